//! Users and their rights, as the auth file lists them (TOML):
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! # sha256 of her bearer token, hex (`raftq auth new-token` prints both)
//! token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! admin = false                  # cluster operations: membership, rebalance
//! [[user.permission]]
//! queues = "orders.*"            # `*` matches any run of characters
//! configure = true               # create, delete, change replicas and leaders
//! write = true                   # publish
//! read = true                    # consume, read, stream reads, commit offsets
//! ```
//!
//! A user may also authenticate with a client certificate of the cluster's
//! CA naming her (`raftq cert create-client --user alice`). Pure: no I/O.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Configure,
    Write,
    Read,
    /// Cluster operations (membership, rebalance).
    Admin,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Configure => "configure",
            Right::Write => "write",
            Right::Read => "read",
            Right::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Hex SHA-256 of the user's bearer token; none: certificate only.
    #[serde(default)]
    pub token_sha256: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default, rename = "permission")]
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub queues: String,
    #[serde(default)]
    pub configure: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub read: bool,
}

/// Hex SHA-256 of a token, as the auth file stores it.
pub fn token_digest(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `*` matches any run of characters (none included); everything else
/// matches itself.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

impl Users {
    pub fn parse(text: &str) -> Result<Users, String> {
        let users: Users = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, u) in users.users.iter().enumerate() {
            if u.name.is_empty() {
                return Err(format!("user {} has no name", i + 1));
            }
            if users.users[..i].iter().any(|o| o.name == u.name) {
                return Err(format!("user {} is listed twice", u.name));
            }
            if let Some(d) = &u.token_sha256 {
                if d.len() != 64 || !d.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!(
                        "user {}: token_sha256 is not 64 hex digits (`raftq auth new-token`)",
                        u.name
                    ));
                }
            }
        }
        Ok(users)
    }

    /// The user whose token this is. Digests are compared, not tokens: what
    /// a timing difference could reveal is a hash, not the secret.
    pub fn by_token(&self, token: &str) -> Option<&User> {
        let digest = token_digest(token);
        self.users.iter().find(|u| {
            u.token_sha256
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(&digest))
        })
    }

    pub fn by_name(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

impl User {
    /// May this user exercise `right` on `queue` (or, for `None`, on the
    /// cluster)?
    pub fn may(&self, right: Right, queue: Option<&str>) -> bool {
        if self.admin {
            return true;
        }
        let Some(queue) = queue else {
            return false;
        };
        self.permissions.iter().any(|p| {
            glob_matches(&p.queues, queue)
                && match right {
                    Right::Configure => p.configure,
                    Right::Write => p.write,
                    Right::Read => p.read,
                    Right::Admin => false,
                }
        })
    }

    /// May this user see `queue` at all (queue info, listings)?
    pub fn sees(&self, queue: &str) -> bool {
        self.admin
            || self
                .permissions
                .iter()
                .any(|p| glob_matches(&p.queues, queue) && (p.configure || p.write || p.read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FILE: &str = r#"
[[user]]
name = "alice"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
[[user.permission]]
queues = "orders.*"
write = true
read = true

[[user]]
name = "ops"
admin = true
"#;

    #[test]
    fn rights_follow_patterns_and_admin_may_do_everything() {
        let users = Users::parse(FILE).expect("parses");
        let alice = users.by_token("test").expect("sha256(test)");
        assert_eq!(alice.name, "alice");
        assert!(alice.may(Right::Write, Some("orders.eu")));
        assert!(alice.may(Right::Read, Some("orders.eu")));
        assert!(!alice.may(Right::Configure, Some("orders.eu")));
        assert!(!alice.may(Right::Write, Some("payments")));
        assert!(!alice.may(Right::Admin, None));
        assert!(alice.sees("orders.x") && !alice.sees("payments"));
        assert!(users.by_token("wrong").is_none());
        let ops = users.by_name("ops").expect("ops");
        assert!(ops.may(Right::Admin, None) && ops.may(Right::Configure, Some("anything")));
        assert!(
            users.by_token("").is_none(),
            "a user without a token has none"
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(
            Users::parse("[[user]]\nname = \"a\"\n[[user]]\nname = \"a\"\n")
                .expect_err("twice")
                .contains("twice")
        );
        assert!(
            Users::parse("[[user]]\nname = \"a\"\ntoken_sha256 = \"abc\"\n")
                .expect_err("short digest")
                .contains("64 hex")
        );
        assert!(Users::parse("[[user]]\nname = \"a\"\nadmn = true\n").is_err());
    }

    #[test]
    fn globs() {
        for (p, n, m) in [
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("orders.*", "orders.", true),
            ("orders.*", "orders", false),
            ("*", "", true),
            ("*.dlq", "a.dlq", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
        ] {
            assert_eq!(glob_matches(p, n), m, "{p} ~ {n}");
        }
    }

    proptest! {
        /// A pattern without `*` matches only itself; `prefix*` exactly the
        /// names that start with prefix.
        #[test]
        fn globs_agree_with_plain_string_tests(prefix in "[a-z.]{0,6}", name in "[a-z.]{0,8}") {
            prop_assert_eq!(glob_matches(&prefix, &name), prefix == name);
            let star = format!("{prefix}*");
            prop_assert_eq!(glob_matches(&star, &name), name.starts_with(&prefix));
        }
    }
}
