//! Topic names, validated with Kafka's rule so that no accepted name can leave the directory.

use crate::error::{Error, Result};

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks `name` against Kafka's rule: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
///
/// # Errors
/// [`Error::InvalidTopicName`] saying what is wrong.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::InvalidTopicName { name: name.to_owned(), reason: reason.to_owned() });
    if name.is_empty() {
        return bad("a topic name cannot be empty");
    }
    if name == "." || name == ".." {
        return bad("a topic name cannot be `.` or `..`");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("a topic name is at most 249 characters");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason: format!("character {c:?} is not allowed: use ASCII letters, digits, `.`, `_` and `-`"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    #[test]
    fn kafka_rule() {
        for ok in ["a", "orders", "a.b_c-d", "X9", &"x".repeat(249), "..a", "a.."] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "a\\b", "a\0b", "/abs", "é", "a b", &"x".repeat(250)] {
            assert!(matches!(validate_topic_name(bad), Err(Error::InvalidTopicName { .. })), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn accepted_names_stay_inside(name in "\\PC{0,300}") {
            if validate_topic_name(&name).is_ok() {
                let base = Path::new("/base/topics");
                let joined = base.join(&name);
                prop_assert!(joined.starts_with(base));
                let extra: Vec<_> = joined.strip_prefix(base).map(|p| p.components().collect()).unwrap_or_default();
                prop_assert_eq!(extra.len(), 1);
                prop_assert!(matches!(extra[0], Component::Normal(_)));
            }
        }

        #[test]
        fn kafka_alphabet_names_are_accepted(name in "[A-Za-z0-9._-]{1,249}") {
            prop_assume!(name != "." && name != "..");
            prop_assert!(validate_topic_name(&name).is_ok());
        }
    }
}
