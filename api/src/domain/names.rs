//! Identifiers and free-text fields. The regular expressions that guard values sent to instances are
//! the very strings the SSM documents carry as `allowedPattern` (a test compares them), so the server
//! and SSM enforce one rule.

use std::fmt;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use sha2::{Digest, Sha256};

use super::ValidationError;

/// `allowedPattern` of the OS user name parameter.
pub const OS_USER_PATTERN: &str = "^gk-[a-z0-9][a-z0-9-]{0,28}$";
/// `allowedPattern` of the public key parameter: one ed25519 key in OpenSSH format, no options, no comment.
pub const PUBLIC_KEY_PATTERN: &str = "^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}$";
/// `allowedPattern` of the grant id parameter (a lowercase UUID).
pub const GRANT_ID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// `allowedPattern` of the end-of-access parameter: UTC, minute precision, `YYYYMMDDHHMM`.
pub const EXPIRES_AT_PATTERN: &str =
    "^20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9]$";
/// `allowedPattern` of the sudo switch.
pub const SUDO_PATTERN: &str = "^(true|false)$";
/// `allowedPattern` of the Windows user name parameter (local user names have 20 characters at most).
pub const WINDOWS_USER_PATTERN: &str = "^gk-[a-z0-9][a-z0-9-]{0,16}$";
/// `allowedPattern` of the one-time RSA-2048 public key (base64 of the 256-byte modulus).
pub const PASSWORD_KEY_PATTERN: &str = "^[A-Za-z0-9+/]{342}==$";
/// `allowedPattern` of the script's time limit in seconds (10-9999).
pub const EXECUTION_TIMEOUT_PATTERN: &str = "^[1-9][0-9]{1,3}$";

fn regex(pattern: &str) -> Regex {
    // The patterns are compile-time constants covered by tests; an invalid one is a programming error.
    Regex::new(pattern).expect("built-in pattern compiles")
}

static OS_USER_RE: LazyLock<Regex> = LazyLock::new(|| regex(OS_USER_PATTERN));
static PUBLIC_KEY_RE: LazyLock<Regex> = LazyLock::new(|| regex(PUBLIC_KEY_PATTERN));
static GRANT_ID_RE: LazyLock<Regex> = LazyLock::new(|| regex(GRANT_ID_PATTERN));
static EXPIRES_AT_RE: LazyLock<Regex> = LazyLock::new(|| regex(EXPIRES_AT_PATTERN));
static WINDOWS_USER_RE: LazyLock<Regex> = LazyLock::new(|| regex(WINDOWS_USER_PATTERN));
static INSTANCE_ID_RE: LazyLock<Regex> = LazyLock::new(|| regex("^i-([0-9a-f]{8}|[0-9a-f]{17})$"));
static SUBJECT_RE: LazyLock<Regex> =
    LazyLock::new(|| regex("^[A-Za-z0-9][A-Za-z0-9._@+|:=-]{0,127}$"));
static ENVIRONMENT_RE: LazyLock<Regex> = LazyLock::new(|| regex("^[a-z0-9][a-z0-9_-]{0,31}$"));
static TICKET_RE: LazyLock<Regex> = LazyLock::new(|| regex("^[A-Za-z0-9][A-Za-z0-9._/#:-]{0,63}$"));
static PLAIN_SUBJECT_RE: LazyLock<Regex> = LazyLock::new(|| regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$"));

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// An EC2 instance id such as `i-0123456789abcdef0`.
    InstanceId
);
string_newtype!(
    /// The id of a person or service identity (the token's `sub`).
    SubjectId
);
string_newtype!(
    /// The temporary OS account on an instance, always derived by the server from a [`SubjectId`].
    OsUserName
);
string_newtype!(
    /// A configured environment such as `dev` or `prod`.
    EnvironmentName
);
string_newtype!(
    /// Why access is needed; shown to approvers and kept in the audit trail.
    Reason
);
string_newtype!(
    /// A change or incident ticket reference.
    Ticket
);
string_newtype!(
    /// An approver's comment.
    Comment
);
string_newtype!(
    /// A public key in the one-line OpenSSH format the create document accepts.
    PublicKeyLine
);
string_newtype!(
    /// The id a grant's key line is tagged with on the instance.
    GrantId
);

impl InstanceId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if INSTANCE_ID_RE.is_match(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "invalid_instance_id",
                format!(
                    "{:?} is not an EC2 instance id (i- followed by 8 or 17 hex digits)",
                    truncate(value)
                ),
            ))
        }
    }
}

impl SubjectId {
    /// The actor name the worker writes into the audit trail; no person may carry it.
    pub const RESERVED: &'static [&'static str] = &["system"];

    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if Self::RESERVED.iter().any(|r| r.eq_ignore_ascii_case(value)) {
            return Err(ValidationError::new(
                "invalid_subject",
                format!("{value:?} is reserved for Gatekeeper itself"),
            ));
        }
        if SUBJECT_RE.is_match(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "invalid_subject",
                format!(
                    "{:?} is not a user id (1-128 characters: letters, digits and . _ @ + | : = -, starting with a letter or digit)",
                    truncate(value)
                ),
            ))
        }
    }

    /// The OS user name of this subject: `gk-` + the id when it is already a plain lowercase name of at
    /// most 29 characters without `--`; otherwise `gk-` + a sanitised prefix + `--` + 12 hex digits of
    /// the id's SHA-256. Plain names never contain `--`, so a plain id never meets a hashed one; two
    /// hashed ids meeting is refused when a request is made (see `os_user_collision`).
    pub fn os_user(&self) -> OsUserName {
        let id = self.as_str();
        if id.len() <= 29 && PLAIN_SUBJECT_RE.is_match(id) {
            return OsUserName(format!("gk-{id}"));
        }
        let digest = Sha256::digest(id.as_bytes());
        let hash = hex::encode(&digest[..6]);
        let mut prefix = String::new();
        for c in id.to_ascii_lowercase().chars() {
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if c == '-' && (prefix.is_empty() || prefix.ends_with('-')) {
                continue;
            }
            prefix.push(c);
            if prefix.len() == 13 {
                break;
            }
        }
        let prefix = prefix.trim_end_matches('-');
        let name = if prefix.is_empty() {
            format!("gk-u--{hash}")
        } else {
            format!("gk-{prefix}--{hash}")
        };
        OsUserName(name)
    }
}

impl SubjectId {
    /// The local user name on Windows (20 characters at most): the Linux name when it fits, otherwise
    /// `gk-` + a prefix of at most 3 characters + `--` + 12 hex digits (48 bits) of the id's SHA-256,
    /// as wide as the Linux names' hash: finding an id that lands on somebody's account costs 2^48
    /// hashes, and the server refuses any that does (`os_user_collision`).
    pub fn windows_user(&self) -> OsUserName {
        let linux = self.os_user();
        if linux.as_str().len() <= 20 {
            return linux;
        }
        let digest = Sha256::digest(self.as_str().as_bytes());
        let hash = hex::encode(&digest[..6]);
        let stem = linux.as_str()["gk-".len()..]
            .split("--")
            .next()
            .unwrap_or_default();
        let prefix: String = stem.chars().take(3).collect();
        let prefix = prefix.trim_end_matches('-');
        if prefix.is_empty() {
            OsUserName(format!("gk-u--{hash}"))
        } else {
            OsUserName(format!("gk-{prefix}--{hash}"))
        }
    }
}

impl OsUserName {
    pub fn is_valid_windows(&self) -> bool {
        WINDOWS_USER_RE.is_match(&self.0)
    }

    /// Accepts only names the server itself would derive (used to re-check stored values).
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if OS_USER_RE.is_match(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "invalid_os_user",
                format!("{:?} is not a Gatekeeper OS user name", truncate(value)),
            ))
        }
    }
}

impl EnvironmentName {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if ENVIRONMENT_RE.is_match(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "invalid_environment",
                format!(
                    "{:?} is not an environment name (1-32 characters of a-z, 0-9, '-' and '_')",
                    truncate(value)
                ),
            ))
        }
    }
}

/// Invisible characters that change how text reads or hide text: every format character (Unicode
/// category Cf: bidirectional overrides and isolates, zero-width characters and joiners, the
/// byte-order mark, tag characters, Arabic and other number marks, Egyptian format controls…) and
/// every other default-ignorable one (fillers that render as blanks, the combining grapheme joiner,
/// unassigned ignorables), line and paragraph separators, and blank-looking Braille. Variation
/// selectors are not here: one after a character is how emoji and some scripts are written; a run
/// of them (which can carry a hidden payload) is refused by [`has_control`].
pub fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{0890}'..='\u{0891}' | '\u{08E2}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{2800}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
        | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1345F}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E00FF}' | '\u{E01F0}'..='\u{E0FFF}')
}

/// Variation selectors (standard, Mongolian, and the supplement).
fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{180B}'..='\u{180D}' | '\u{180F}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

fn has_control(value: &str, allow_newline: bool) -> bool {
    let mut previous: Option<char> = None;
    for c in value.chars() {
        if (c.is_control() && !(allow_newline && c == '\n')) || is_format_char(c) {
            return true;
        }
        // One selector after a character is writing; a selector first or after another is hiding.
        if is_variation_selector(c) && previous.is_none_or(is_variation_selector) {
            return true;
        }
        previous = Some(c);
    }
    false
}

/// A display name or e-mail from a token, made safe to store and show: control and invisible
/// characters dropped, at most `max` characters.
pub fn clean_display(value: &str, max: usize) -> Option<String> {
    let cleaned: String = value
        .chars()
        .filter(|c| !c.is_control() && !is_format_char(*c))
        .take(max)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

impl Reason {
    pub const MIN: usize = 3;
    pub const MAX: usize = 1000;

    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let value = value.trim();
        let len = value.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(ValidationError::new(
                "invalid_reason",
                format!("reason must be {} to {} characters", Self::MIN, Self::MAX),
            ));
        }
        if has_control(value, true) {
            return Err(ValidationError::new(
                "invalid_reason",
                "reason must not contain control or invisible formatting characters",
            ));
        }
        // Something an approver can read: blanks of any kind do not explain anything.
        if value.chars().filter(|c| c.is_alphanumeric()).count() < Self::MIN {
            return Err(ValidationError::new(
                "invalid_reason",
                "reason must say in words why access is needed",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

impl Ticket {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let value = value.trim();
        if TICKET_RE.is_match(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "invalid_ticket",
                "ticket must be 1-64 characters of letters, digits and . _ / # : -",
            ))
        }
    }
}

impl Comment {
    pub const MAX: usize = 1000;

    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let value = value.trim();
        if value.chars().count() > Self::MAX || has_control(value, true) {
            return Err(ValidationError::new(
                "invalid_comment",
                format!(
                    "comment must be at most {} characters without control or invisible characters",
                    Self::MAX
                ),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PublicKeyLine {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if PUBLIC_KEY_RE.is_match(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "invalid_public_key",
                "not a single ed25519 public key in OpenSSH format",
            ))
        }
    }
}

impl GrantId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if GRANT_ID_RE.is_match(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "invalid_grant_id",
                format!("{:?} is not a grant id", truncate(value)),
            ))
        }
    }
}

/// The end of access as the create document takes it: UTC, `YYYYMMDDHHMM`.
pub fn expiry_parameter(at: DateTime<Utc>) -> Result<String, ValidationError> {
    let value = at.format("%Y%m%d%H%M").to_string();
    if EXPIRES_AT_RE.is_match(&value) {
        Ok(value)
    } else {
        Err(ValidationError::new(
            "invalid_expiry",
            format!("{value} is outside the range the documents accept"),
        ))
    }
}

/// A requested duration in whole minutes, checked against the environment's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationMinutes(u32);

impl DurationMinutes {
    pub fn parse(value: i64, max_minutes: u32) -> Result<Self, ValidationError> {
        if value < 1 || value > i64::from(max_minutes) {
            return Err(ValidationError::new(
                "invalid_duration",
                format!(
                    "duration_minutes must be between 1 and {max_minutes} for this environment"
                ),
            ));
        }
        Ok(Self(value as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

fn truncate(value: &str) -> String {
    value.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_subjects_keep_their_name() {
        let s = SubjectId::parse("alice").unwrap();
        assert_eq!(s.os_user().as_str(), "gk-alice");
        let s = SubjectId::parse("bob-2").unwrap();
        assert_eq!(s.os_user().as_str(), "gk-bob-2");
    }

    #[test]
    fn other_subjects_get_a_hashed_name_that_matches_the_pattern() {
        for id in [
            "Alice",
            "alice.smith@example.com",
            "auth0|5f7c8ec7c33c6c004bbafe82",
            "a--b",
            "x",
            "0abc",
            "a-very-long-user-name-that-exceeds-the-limit",
            "@@@",
        ] {
            let subject = SubjectId::parse(id).unwrap_or_else(|_| SubjectId(id.to_owned()));
            let user = subject.os_user();
            assert!(OS_USER_RE.is_match(user.as_str()), "{id} -> {user}");
            assert!(user.as_str().len() <= 32);
        }
        let a = SubjectId::parse("alice.smith").unwrap().os_user();
        let b = SubjectId::parse("alice_smith").unwrap().os_user();
        assert_ne!(a, b, "ids that sanitise alike must still differ");
        // A plain id can never collide with a hashed one: plain ids contain no "--".
        assert!(a.as_str().contains("--"));
        assert!(
            SubjectId::parse("alice--1234abcd")
                .unwrap()
                .os_user()
                .as_str()
                .contains("--")
        );
        assert_ne!(
            SubjectId::parse("alice--1234abcd")
                .unwrap()
                .os_user()
                .as_str(),
            "gk-alice--1234abcd"
        );
    }

    #[test]
    fn windows_names_fit_twenty_characters_and_stay_distinct() {
        assert_eq!(
            SubjectId::parse("alice").unwrap().windows_user().as_str(),
            "gk-alice"
        );
        let long = SubjectId::parse("a-very-long-user-name").unwrap();
        let other = SubjectId::parse("a-very-long-user-nama").unwrap();
        for s in [
            &long,
            &other,
            &SubjectId::parse("alice.smith@example.com").unwrap(),
        ] {
            let w = s.windows_user();
            assert!(w.is_valid_windows(), "{w}");
            assert!(w.as_str().len() <= 20);
        }
        assert_ne!(long.windows_user(), other.windows_user());
        assert!(long.windows_user().as_str().contains("--"));
        // 3 characters of prefix and 48 bits of hash: exactly 20 characters.
        let w = SubjectId::parse("alice.smith@example.com")
            .unwrap()
            .windows_user();
        assert!(w.as_str().starts_with("gk-ali--"), "{w}");
        assert_eq!(w.as_str().len(), 20, "{w}");
    }

    #[test]
    fn instance_ids() {
        assert!(InstanceId::parse("i-0123456789abcdef0").is_ok());
        assert!(InstanceId::parse("i-01234567").is_ok());
        for bad in [
            "",
            "i-",
            "i-0123",
            "I-01234567",
            "i-0123456789abcdef0 ",
            "i-01234567;id",
            "i-0123456g",
        ] {
            assert!(InstanceId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subjects_refuse_spaces_controls_and_reserved_names() {
        assert!(SubjectId::parse("system").is_err());
        assert!(SubjectId::parse("SYSTEM").is_err());
        for bad in [
            "",
            " alice",
            "alice bob",
            "alice\n",
            "al'ice",
            "$(id)",
            "-alice",
            &"a".repeat(129),
        ] {
            assert!(SubjectId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reasons_and_tickets() {
        assert!(Reason::parse("  fix the outage  ").is_ok());
        assert!(Reason::parse("ab").is_err());
        assert!(Reason::parse("bad\u{7}bell").is_err());
        assert!(
            Reason::parse("ok \u{202E}evil\u{202C}").is_err(),
            "bidi override"
        );
        assert!(Reason::parse("ok\u{200B}zero width").is_err());
        for hidden in [
            '\u{2028}',
            '\u{2029}',
            '\u{034F}',
            '\u{115F}',
            '\u{3164}',
            '\u{E0041}',
        ] {
            assert!(
                Reason::parse(&format!("fine{hidden}text")).is_err(),
                "U+{:04X}",
                hidden as u32
            );
        }
        // Letters of any script are fine, and so is one variation selector after a character.
        assert!(Reason::parse("Zugriff für Überprüfung — 检查日志 ❤️").is_ok());
        // A run of selectors (a hidden payload), or one with nothing before it, is not.
        assert!(Reason::parse("fine\u{FE0F}\u{FE0F}\u{FE0F} text").is_err());
        assert!(Reason::parse("fine \u{E0100}\u{E0101}\u{E0102} text").is_err());
        assert!(Reason::parse("\u{FE0F}fine text").is_err());
        // Blanks do not explain anything.
        assert!(Reason::parse("\u{3000}\u{3000}\u{3000}  ...").is_err());
        assert!(Reason::parse("!!! ??? ...").is_err());
        assert_eq!(
            clean_display("Ni\u{0}na\u{1b}[31m\u{202E}x", 128).as_deref(),
            Some("Nina[31mx")
        );
        assert_eq!(
            clean_display(&"é".repeat(500), 128).map(|s| s.chars().count()),
            Some(128)
        );
        assert_eq!(clean_display("\u{0}", 128), None);
        assert!(Reason::parse(&"x".repeat(1001)).is_err());
        assert!(Ticket::parse("OPS-1234").is_ok());
        assert!(Ticket::parse("OPS 1234").is_err());
        assert!(Ticket::parse("").is_err());
    }

    #[test]
    fn public_keys() {
        let good =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2Cqj3S1Xb0w3pVJtqk5rN1u0bqV1C6x8ZQ3cE1yZt";
        assert!(PublicKeyLine::parse(good).is_ok());
        assert!(PublicKeyLine::parse(&format!("{good} comment")).is_err());
        assert!(PublicKeyLine::parse(&format!("command=\"id\" {good}")).is_err());
        assert!(PublicKeyLine::parse(&format!("{good}\n{good}")).is_err());
    }

    #[test]
    fn expiry_format() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T19:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(expiry_parameter(at).unwrap(), "202612031905");
    }

    #[test]
    fn durations() {
        assert!(DurationMinutes::parse(0, 60).is_err());
        assert!(DurationMinutes::parse(61, 60).is_err());
        assert!(DurationMinutes::parse(-5, 60).is_err());
        assert_eq!(DurationMinutes::parse(60, 60).unwrap().get(), 60);
    }
}
