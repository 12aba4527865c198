//! Changelog topic naming.

/// The changelog topic of store `store` for source stream `stream_id` in
/// consumer group `group`: `changelog__<group>--<stream>--<store>`, as
/// quixstreams names it.
pub fn changelog_topic_name(group: &str, stream_id: &str, store: &str) -> String {
    format!("changelog__{group}--{stream_id}--{store}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_layout() {
        assert_eq!(
            super::changelog_topic_name("g", "clicks", "counts"),
            "changelog__g--clicks--counts"
        );
    }
}
