//! The SSM Command documents of `ssm-documents/`, compiled into the binary, staged into SSM, and
//! rendered the way SSM renders them (for tests and the `documents render` subcommand).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::aws::{AwsError, DocumentStore};

/// A document Gatekeeper owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    LinuxCreateUser,
    LinuxRemoveUser,
    WindowsCreateUser,
    WindowsRemoveUser,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 4] = [
        DocumentKind::LinuxCreateUser,
        DocumentKind::LinuxRemoveUser,
        DocumentKind::WindowsCreateUser,
        DocumentKind::WindowsRemoveUser,
    ];

    /// The document's name in SSM, after the configured prefix.
    pub fn suffix(self) -> &'static str {
        match self {
            DocumentKind::LinuxCreateUser => "LinuxCreateUser",
            DocumentKind::LinuxRemoveUser => "LinuxRemoveUser",
            DocumentKind::WindowsCreateUser => "WindowsCreateUser",
            DocumentKind::WindowsRemoveUser => "WindowsRemoveUser",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            DocumentKind::LinuxCreateUser => "linux-create-user.yaml",
            DocumentKind::LinuxRemoveUser => "linux-remove-user.yaml",
            DocumentKind::WindowsCreateUser => "windows-create-user.yaml",
            DocumentKind::WindowsRemoveUser => "windows-remove-user.yaml",
        }
    }

    pub fn content(self) -> &'static str {
        match self {
            DocumentKind::LinuxCreateUser => {
                include_str!("../../ssm-documents/linux-create-user.yaml")
            }
            DocumentKind::LinuxRemoveUser => {
                include_str!("../../ssm-documents/linux-remove-user.yaml")
            }
            DocumentKind::WindowsCreateUser => {
                include_str!("../../ssm-documents/windows-create-user.yaml")
            }
            DocumentKind::WindowsRemoveUser => {
                include_str!("../../ssm-documents/windows-remove-user.yaml")
            }
        }
    }

    pub fn name(self, prefix: &str) -> String {
        format!("{prefix}-{}", self.suffix())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub schema_version: String,
    pub description: String,
    pub parameters: BTreeMap<String, Parameter>,
    pub main_steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub allowed_pattern: Option<String>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub action: String,
    pub name: String,
    pub inputs: StepInputs,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInputs {
    pub run_command: Vec<String>,
    pub timeout_seconds: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("document {0} does not parse: {1}")]
    Parse(&'static str, String),
    #[error("parameter {0} is missing")]
    Missing(String),
    #[error("parameter {0} is not declared by the document")]
    Unknown(String),
    #[error("parameter {name} does not match its allowedPattern")]
    Pattern { name: String },
}

pub fn parse(kind: DocumentKind) -> Result<Document, DocumentError> {
    serde_yaml::from_str(kind.content())
        .map_err(|e| DocumentError::Parse(kind.file_name(), e.to_string()))
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}").expect("placeholder pattern"));

/// Renders the document's scripts as SSM does: every parameter must be declared and match its
/// `allowedPattern`, defaults fill the gaps, then `{{ name }}` is replaced by the value as text.
/// Returns one script per step.
pub fn render(
    kind: DocumentKind,
    values: &BTreeMap<String, String>,
) -> Result<Vec<String>, DocumentError> {
    let document = parse(kind)?;
    for name in values.keys() {
        if !document.parameters.contains_key(name) {
            return Err(DocumentError::Unknown(name.clone()));
        }
    }
    let mut resolved = BTreeMap::new();
    for (name, parameter) in &document.parameters {
        let value = values
            .get(name)
            .cloned()
            .or_else(|| parameter.default.clone())
            .ok_or_else(|| DocumentError::Missing(name.clone()))?;
        if let Some(pattern) = &parameter.allowed_pattern {
            let re = Regex::new(pattern)
                .map_err(|e| DocumentError::Parse(kind.file_name(), e.to_string()))?;
            if !re.is_match(&value) {
                return Err(DocumentError::Pattern { name: name.clone() });
            }
        }
        resolved.insert(name.clone(), value);
    }
    Ok(substitute(&document, &resolved))
}

/// `{{ name }}` substitution alone, without any pattern check (to show what a script would do if the
/// patterns were bypassed).
pub fn substitute(document: &Document, values: &BTreeMap<String, String>) -> Vec<String> {
    document
        .main_steps
        .iter()
        .map(|step| {
            let script = step.inputs.run_command.join("\n");
            PLACEHOLDER
                .replace_all(&script, |caps: &regex::Captures<'_>| {
                    values
                        .get(&caps[1])
                        .cloned()
                        .unwrap_or_else(|| caps[0].to_owned())
                })
                .into_owned()
        })
        .collect()
}

/// What staging did (or would do) to one document in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageAction {
    Unchanged,
    Created,
    Updated {
        version: String,
    },
    /// Dry run: the document is missing.
    WouldCreate,
    /// Dry run: the stored content differs; carries a line diff.
    WouldUpdate {
        diff: String,
    },
}

#[derive(Debug, Clone)]
pub struct StageReport {
    pub region: String,
    pub name: String,
    pub action: StageAction,
}

fn same_content(stored: &str, ours: &str) -> bool {
    if stored == ours {
        return true;
    }
    // SSM may hand back the content re-serialised; compare meaning, not bytes.
    match (
        serde_yaml::from_str::<serde_yaml::Value>(stored),
        serde_yaml::from_str::<serde_yaml::Value>(ours),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Creates each document that is missing, and updates (new version + new default version) each one
/// whose content changed; leaves unchanged ones alone. With `dry_run`, only reports.
pub async fn stage(
    store: &dyn DocumentStore,
    regions: &[String],
    prefix: &str,
    dry_run: bool,
) -> Result<Vec<StageReport>, AwsError> {
    let mut reports = Vec::new();
    for region in regions {
        for kind in DocumentKind::ALL {
            let name = kind.name(prefix);
            let ours = kind.content();
            let action = match store.get_document(region, &name, None).await? {
                None if dry_run => StageAction::WouldCreate,
                None => {
                    store.create_document(region, &name, ours).await?;
                    StageAction::Created
                }
                Some(stored) if same_content(&stored.content, ours) => StageAction::Unchanged,
                Some(stored) if dry_run => StageAction::WouldUpdate {
                    diff: line_diff(&stored.content, ours),
                },
                Some(_) => {
                    let version = match store.update_document(region, &name, ours).await {
                        Ok(version) => version,
                        // Our content is an older version (somebody changed the default since):
                        // make that version the default again.
                        Err(AwsError::DuplicateDocumentContent) => {
                            find_version(store, region, &name, ours).await?
                        }
                        Err(e) => return Err(e),
                    };
                    store.set_default_version(region, &name, &version).await?;
                    StageAction::Updated { version }
                }
            };
            reports.push(StageReport {
                region: region.clone(),
                name,
                action,
            });
        }
    }
    Ok(reports)
}

async fn find_version(
    store: &dyn DocumentStore,
    region: &str,
    name: &str,
    ours: &str,
) -> Result<String, AwsError> {
    for version in store.list_document_versions(region, name).await? {
        if let Some(stored) = store.get_document(region, name, Some(&version)).await?
            && same_content(&stored.content, ours)
        {
            return Ok(version);
        }
    }
    Err(AwsError::Other(format!(
        "SSM says a version of {name} has Gatekeeper's content, but none was found"
    )))
}

/// A minimal unified-style diff (longest common subsequence of lines), enough to review a change.
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain;

    fn pattern(kind: DocumentKind, name: &str) -> String {
        parse(kind).unwrap().parameters[name]
            .allowed_pattern
            .clone()
            .unwrap()
    }

    #[test]
    fn documents_parse_and_declare_anchored_patterns() {
        for kind in DocumentKind::ALL {
            let doc = parse(kind).unwrap();
            assert_eq!(doc.schema_version, "2.2");
            for (name, p) in &doc.parameters {
                let pat = p
                    .allowed_pattern
                    .as_deref()
                    .unwrap_or_else(|| panic!("{name} has no pattern"));
                assert!(pat.starts_with('^') && pat.ends_with('$'), "{name}: {pat}");
            }
        }
    }

    #[test]
    fn document_patterns_are_the_servers_own() {
        for kind in DocumentKind::ALL {
            assert_eq!(pattern(kind, "grantId"), domain::GRANT_ID_PATTERN);
        }
        for kind in [DocumentKind::LinuxCreateUser, DocumentKind::LinuxRemoveUser] {
            assert_eq!(pattern(kind, "username"), domain::OS_USER_PATTERN);
        }
        let w = DocumentKind::WindowsCreateUser;
        assert_eq!(pattern(w, "username"), domain::WINDOWS_USER_PATTERN);
        assert_eq!(pattern(w, "administrator"), domain::SUDO_PATTERN);
        assert_eq!(pattern(w, "passwordKey"), domain::PASSWORD_KEY_PATTERN);
        assert_eq!(pattern(w, "expiresAt"), domain::EXPIRES_AT_PATTERN);
        assert_eq!(
            pattern(DocumentKind::WindowsRemoveUser, "username"),
            domain::WINDOWS_USER_PATTERN
        );
        let c = DocumentKind::LinuxCreateUser;
        assert_eq!(pattern(c, "publicKey"), domain::PUBLIC_KEY_PATTERN);
        assert_eq!(pattern(c, "expiresAt"), domain::EXPIRES_AT_PATTERN);
        assert_eq!(pattern(c, "sudo"), domain::SUDO_PATTERN);
        for kind in DocumentKind::ALL {
            assert_eq!(
                pattern(kind, "executionTimeout"),
                domain::EXECUTION_TIMEOUT_PATTERN
            );
        }
    }

    #[test]
    fn placeholders_are_data_after_exit_never_code() {
        for kind in [
            DocumentKind::LinuxCreateUser,
            DocumentKind::LinuxRemoveUser,
            DocumentKind::WindowsCreateUser,
            DocumentKind::WindowsRemoveUser,
        ] {
            let doc = parse(kind).unwrap();
            for step in &doc.main_steps {
                let script = step.inputs.run_command.join("\n");
                let lines: Vec<&str> = script.lines().collect();
                let exit = lines
                    .iter()
                    .rposition(|l| l.trim() == "exit 0")
                    .expect("the script ends with exit 0 before its data");
                assert_eq!(lines[exit + 1], "#GATEKEEPER-PARAMETERS-BEGIN");
                assert_eq!(*lines.last().unwrap(), "#GATEKEEPER-PARAMETERS-END");
                for line in &lines[..=exit] {
                    assert!(!line.contains("{{"), "a placeholder in code: {line}");
                }
                let data = &lines[exit + 2..lines.len() - 1];
                let mut names = Vec::new();
                for line in data {
                    let (name, value) = line.split_once('=').expect("name=value");
                    assert_eq!(value, format!("{{{{ {name} }}}}"), "{line}");
                    assert!(doc.parameters.contains_key(name), "{name} undeclared");
                    names.push(name.to_owned());
                }
                // Every parameter but the time limit (used by SSM itself) is passed as data, once.
                let mut declared: Vec<String> = doc
                    .parameters
                    .keys()
                    .filter(|n| *n != "executionTimeout")
                    .cloned()
                    .collect();
                declared.sort();
                names.sort();
                assert_eq!(names, declared);
                // The script reads the block by position: it knows the names, in the block's order.
                if matches!(
                    kind,
                    DocumentKind::LinuxCreateUser | DocumentKind::LinuxRemoveUser
                ) {
                    let order: Vec<&str> =
                        data.iter().map(|l| l.split('=').next().unwrap()).collect();
                    let expected = format!("\nnames=({})\n", order.join(" "));
                    assert!(
                        script.contains(&expected),
                        "{kind:?} does not declare {expected}"
                    );
                } else {
                    let count = format!("$end -ne $begin + {})", data.len() + 1);
                    assert!(script.contains(&count), "{kind:?} does not check {count}");
                }
            }
            assert_eq!(
                doc.main_steps[0].inputs.timeout_seconds.as_deref(),
                Some("{{ executionTimeout }}")
            );
        }
    }

    /// No PowerShell runs here: check the Windows scripts' structure, and that they re-check every
    /// parameter with the same pattern (PowerShell spelling: `\A…\z` with case-sensitive `-cnotmatch`).
    #[test]
    fn windows_scripts_recheck_every_parameter_and_keep_secrets_off_the_command_line() {
        for kind in [
            DocumentKind::WindowsCreateUser,
            DocumentKind::WindowsRemoveUser,
        ] {
            let doc = parse(kind).unwrap();
            assert_eq!(doc.main_steps[0].action, "aws:runPowerShellScript");
            let script = doc.main_steps[0].inputs.run_command.join("\n");
            assert!(script.starts_with("$ErrorActionPreference = 'Stop'"));
            for (name, p) in &doc.parameters {
                if name == "executionTimeout" {
                    continue;
                }
                let pattern = p.allowed_pattern.as_deref().unwrap();
                let ps = format!("\\A{}\\z", &pattern[1..pattern.len() - 1]);
                assert!(
                    script.contains(&format!("-cnotmatch '{ps}'")),
                    "{kind:?} does not re-check {name} with {ps}"
                );
            }
            // The block is read by position: the script names the parameters in the block's order,
            // requires each marker once and the end marker last.
            let lines: Vec<&str> = script.lines().collect();
            let begin = lines
                .iter()
                .position(|l| *l == "#GATEKEEPER-PARAMETERS-BEGIN")
                .expect("a parameter block");
            let order: Vec<String> = lines[begin + 1..lines.len() - 1]
                .iter()
                .map(|l| format!("'{}'", l.split('=').next().unwrap_or_default()))
                .collect();
            let names = format!("$names = @({})", order.join(", "));
            assert!(script.contains(&names), "{kind:?} does not declare {names}");
            for marker in ["BEGIN') -ne $begin", "END') -ne $end"] {
                let once = format!("[Array]::LastIndexOf($lines, '#GATEKEEPER-PARAMETERS-{marker}");
                assert!(script.contains(&once), "{kind:?} does not check {once}");
            }
            assert!(
                script.contains("$end -ne $last"),
                "{kind:?} lets data follow the block"
            );
            // Run as SYSTEM only, never on a domain controller; state and lock in a folder only SYSTEM
            // and Administrators can enter, the lock an exclusive file handle (a named mutex could be
            // squatted by any user); no error silenced, nothing evaluated as code.
            for needle in [
                "-cne 'S-1-5-18'",
                "DomainRole -ge 4",
                "GetFolderPath('LocalApplicationData')",
                "SetAccessRuleProtection($true, $false)",
                "[IO.FileShare]::None",
            ] {
                assert!(script.contains(needle), "{kind:?} lacks {needle}");
            }
            for needle in [
                "Threading.Mutex",
                "SilentlyContinue",
                "Invoke-Expression",
                "cmd.exe",
                // Module logging records cmdlet arguments: no secret is ever one.
                "AsPlainText",
                "$password",
            ] {
                assert!(!script.contains(needle), "{kind:?} uses {needle}");
            }
            if kind == DocumentKind::WindowsCreateUser {
                // Groups by well-known SID (names are localised); the password leaves only encrypted.
                assert!(script.contains("S-1-5-32-555") && script.contains("S-1-5-32-544"));
                assert!(
                    script.contains("'GATEKEEPER-PASSWORD:' + [Convert]::ToBase64String($cipher)")
                );
                assert!(
                    !doc.parameters
                        .keys()
                        .any(|k| k.eq_ignore_ascii_case("password"))
                );
            }
        }
    }

    #[test]
    fn render_refuses_values_outside_the_patterns() {
        let mut values = BTreeMap::from([
            ("username".to_owned(), "gk-alice".to_owned()),
            (
                "grantId".to_owned(),
                "0b9f1c9e-8f5e-4a47-9a43-4c1a3c1f0a11".to_owned(),
            ),
        ]);
        let scripts = render(DocumentKind::LinuxRemoveUser, &values).unwrap();
        assert!(scripts[0].contains("\nusername=gk-alice\n"));
        values.insert("username".into(), "gk-alice'; reboot; '".into());
        assert!(matches!(
            render(DocumentKind::LinuxRemoveUser, &values),
            Err(DocumentError::Pattern { .. })
        ));
        values.insert("username".into(), "gk-alice".into());
        values.insert("extra".into(), "x".into());
        assert!(matches!(
            render(DocumentKind::LinuxRemoveUser, &values),
            Err(DocumentError::Unknown(_))
        ));
    }

    #[test]
    fn diff_shows_changed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, "- b\n+ B\n");
    }
}
