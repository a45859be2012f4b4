//! The Linux SSM documents, executed for real: rendered as SSM renders them, written to a file and run
//! as root with `sh -c <file>` (as the SSM agent does), inside a sandbox that cannot touch the host's
//! users or files — a private mount and PID namespace over copies of `/etc` and `/home`, with tmpfs
//! over `/run`, `/tmp`, `/var/tmp`, `/dev/shm`, `/var/lib`, `/var/log`, `/var/mail` and `/var/spool` —
//! and a real `sshd` on a loopback port that must accept (or refuse) the generated keys. `/root` is an
//! empty directory of the sandbox too; the sandbox's own directory is mounted back at its path.
//!
//! Needs root, util-linux (`unshare`, `nsenter`, `setpriv`, `flock`), `openssh-server`,
//! `openssh-client`, `sudo` and `passwd`; `scripts/test.sh` installs them. Without them every test here
//! fails with a message saying what is missing: it never passes silently.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use gatekeeper::crypto::generate_ed25519;
use gatekeeper::documents::{self, DocumentKind};

const SETUP: &str = r#"
set -euo pipefail
dir="$1"; port="$2"; disk="${3:-}"
# A machine with one small volume for /etc and /home, which its users can fill: a tmpfs of that size.
base="$dir"
if [[ -n $disk ]]; then
  mkdir -p "$dir/disk"
  mount -t tmpfs -o "size=$disk,mode=0755" tmpfs "$dir/disk"
  base="$dir/disk"
fi
mkdir -p "$base/etc" "$base/home" "$dir/root"
cp -a /etc/. "$base/etc/"
cp -a /home/. "$base/home/"
chmod 0700 "$dir/root"
# The sandbox's own directory stays reachable at the same path whatever the mounts below hide.
mount --bind "$dir" /mnt
mount --bind "$base/etc" /etc
mount --bind "$base/home" /home
mount --bind "$dir/root" /root
for d in /run /var/lib /var/log /var/mail /var/spool; do
  mount -t tmpfs -o mode=0755 tmpfs "$d"
done
for d in /tmp /var/tmp /dev/shm; do
  mount -t tmpfs -o mode=1777 tmpfs "$d"
done
mkdir -p /var/lib/sudo "$dir"
mount --bind /mnt "$dir"
mkdir -p /run/sshd /var/spool/cron/crontabs
chmod 0755 /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile /run/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes yes
AuthorizedKeysFile .ssh/authorized_keys
LogLevel DEBUG1
MaxStartups 100
CONF
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
echo ready >"$dir/ready"
# This shell is the namespace's init: like a real init it reaps orphans, so killed processes do not
# linger as zombies.
while :; do sleep 1 & wait $!; done
"#;

static STEP: AtomicUsize = AtomicUsize::new(0);

struct Sandbox {
    unshare: Child,
    init: u32,
    dir: tempfile::TempDir,
    port: u16,
}

fn require(tools: &[&str]) {
    assert!(
        nix_is_root(),
        "the document tests run the scripts as root inside a sandbox: run them as root (CI does)"
    );
    let missing: Vec<&&str> = tools
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the document tests need {missing:?} (Debian: util-linux openssh-server openssh-client sudo passwd procps; scripts/test.sh installs them)"
    );
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Sandbox {
    fn start() -> Self {
        Self::start_with_disk(None)
    }

    /// A sandbox whose `/etc` and `/home` share one volume of `size` (tmpfs syntax, e.g. `64m`).
    fn start_with_disk(size: Option<&str>) -> Self {
        require(&[
            "unshare",
            "nsenter",
            "setpriv",
            "flock",
            "/usr/sbin/sshd",
            "ssh",
            "ssh-keygen",
            "sudo",
            "visudo",
            "useradd",
            "userdel",
            "pkill",
        ]);
        let dir = tempfile::Builder::new()
            .prefix("gk-sandbox-")
            .tempdir()
            .expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let setup = dir.path().join("setup.sh");
        std::fs::write(&setup, SETUP).unwrap();
        let unshare = Command::new("unshare")
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                "bash",
            ])
            .arg(&setup)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(size.unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare starts");
        let ready = dir.path().join("ready");
        let started = Instant::now();
        while !ready.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the sandbox did not come up (unshare/mount/sshd failed)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", unshare.id()))
                .expect("unshare's child");
        let init: u32 = children
            .split_whitespace()
            .next()
            .expect("a namespace init")
            .parse()
            .unwrap();
        let sandbox = Sandbox {
            unshare,
            init,
            dir,
            port,
        };
        // The sandbox really is separate: a user made inside does not exist outside.
        let probe =
            sandbox.root("useradd --no-create-home gk-sandbox-probe && id gk-sandbox-probe");
        assert!(probe.status.success(), "{}", text(&probe));
        assert!(
            !Command::new("id")
                .arg("gk-sandbox-probe")
                .output()
                .unwrap()
                .status
                .success(),
            "the sandbox leaks users to the host"
        );
        sandbox.root("userdel gk-sandbox-probe");
        sandbox
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs a script as root inside the sandbox the way the SSM agent does: from a file, with `sh -c`.
    fn run_file(&self, script: &str) -> Output {
        let n = STEP.fetch_add(1, Ordering::SeqCst);
        let dir = self.path(&format!("orchestration-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("_script.sh");
        std::fs::write(&file, script).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        Command::new("nsenter")
            .args([
                "--target",
                &self.init.to_string(),
                "--mount",
                "--pid",
                "--",
                "sh",
                "-c",
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    fn root(&self, command: &str) -> Output {
        Command::new("nsenter")
            .args([
                "--target",
                &self.init.to_string(),
                "--mount",
                "--pid",
                "--",
                "bash",
                "-c",
                command,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    fn root_ok(&self, command: &str) -> String {
        let out = self.root(command);
        assert!(out.status.success(), "{command}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn ssh(&self, key: &Path, user: &str, command: &str) -> Output {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(key)
            .args([
                "-p",
                &self.port.to_string(),
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{user}@127.0.0.1"))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }

    fn user_exists(&self, user: &str) -> bool {
        self.root(&format!("id -u {user}")).status.success()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Killing the namespace's init ends every process in it; the mounts go with the namespace.
        let _ = Command::new("kill")
            .args(["-KILL", &self.init.to_string()])
            .status();
        let _ = self.unshare.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Key {
    public: String,
    file: PathBuf,
}

fn key(sandbox: &Sandbox, name: &str) -> Key {
    let pair = generate_ed25519(name).unwrap();
    let file = sandbox.path(name);
    let mut f = std::fs::File::create(&file).unwrap();
    f.write_all(pair.private_openssh.as_bytes()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    Key {
        public: pair.public.to_string(),
        file,
    }
}

fn grant_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn ends_in(minutes: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(minutes))
        .format("%Y%m%d%H%M")
        .to_string()
}

/// Runs `command` as root with the login uid of `user` (as pam_loginuid sets it for their sessions;
/// the sandbox's sshd runs without PAM), detached: it stands for what the user started through sudo.
fn start_as_root_in_session_of(sandbox: &Sandbox, user: &str, command: &str) {
    let uid = sandbox.root_ok(&format!("id -u {user}"));
    let out = sandbox.root(&format!(
        "echo {uid} >/proc/self/loginuid || exit 42; setsid nohup {command} >/dev/null 2>&1 </dev/null & echo started"
    ));
    assert!(
        out.status.code() != Some(42),
        "this kernel does not let root set a login uid (CONFIG_AUDIT): the test cannot stand for a sudo session"
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// The day (since 1970, UTC) from which shadow refuses the account: the first midnight at least 24
/// hours after the end of access.
fn account_expiry_day(expires_at: &str) -> i64 {
    let end = chrono::NaiveDateTime::parse_from_str(expires_at, "%Y%m%d%H%M")
        .unwrap()
        .and_utc()
        .timestamp();
    (end + 86400) / 86400 + 1
}

fn create_params(
    user: &str,
    key: &str,
    grant: &str,
    expires: &str,
    sudo: bool,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("username".into(), user.into()),
        ("publicKey".into(), key.into()),
        ("grantId".into(), grant.into()),
        ("expiresAt".into(), expires.into()),
        ("sudo".into(), sudo.to_string()),
    ])
}

fn remove_params(user: &str, grant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("username".into(), user.into()),
        ("grantId".into(), grant.into()),
    ])
}

fn create(sandbox: &Sandbox, params: &BTreeMap<String, String>) -> Output {
    let script =
        documents::render(DocumentKind::LinuxCreateUser, params).expect("valid parameters render");
    sandbox.run_file(&script[0])
}

fn remove(sandbox: &Sandbox, user: &str, grant: &str) -> Output {
    let script = documents::render(DocumentKind::LinuxRemoveUser, &remove_params(user, grant))
        .expect("valid parameters render");
    sandbox.run_file(&script[0])
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn create_login_rerun_remove_and_processes_end() {
    let sb = Sandbox::start();
    let k = key(&sb, "alice");
    let grant = grant_id();
    let params = create_params("gk-alice", &k.public, &grant, &ends_in(60), false);
    ok(create(&sb, &params));
    let login = sb.ssh(
        &k.file,
        "gk-alice",
        "id -un; umask; stat -c '%a %U' ~ ~/.ssh ~/.ssh/authorized_keys",
    );
    let out = ok(login);
    assert!(out.starts_with("gk-alice\n"), "{out}");
    assert!(
        out.contains("700 gk-alice") && out.contains("600 gk-alice"),
        "{out}"
    );
    let sudo = sb.ssh(&k.file, "gk-alice", "sudo -n true");
    assert!(!sudo.status.success(), "no sudo unless granted");

    // Re-running the same create changes nothing and succeeds.
    ok(create(&sb, &params));
    let keys = sb.root_ok("cat /home/gk-alice/.ssh/authorized_keys");
    assert_eq!(keys.lines().count(), 1, "{keys}");
    // OpenSSH 9.1+ (Debian 12 has 9.2) reads the end as UTC.
    assert!(
        keys.starts_with("expiry-time=\"") && keys.contains("Z\" "),
        "{keys}"
    );
    assert!(
        keys.ends_with(&format!("{} gatekeeper-grant={grant}", k.public)),
        "{keys}"
    );
    let shadow = sb.root_ok("getent shadow gk-alice | cut -d: -f2,8");
    let (password, expiry_days) = shadow.split_once(':').unwrap();
    assert_eq!(password, "*", "no password works");
    let days: i64 = expiry_days.parse().unwrap();
    assert_eq!(
        days,
        account_expiry_day(&params["expiresAt"]),
        "the account expires at the start of a UTC day at least a day after the end"
    );

    // A process the user leaves behind is gone after removal, and so is the user.
    ok(sb.ssh(
        &k.file,
        "gk-alice",
        "nohup setsid sleep 600 >/dev/null 2>&1 & echo started",
    ));
    let uid = sb.root_ok("id -u gk-alice");
    assert!(
        sb.root(&format!("pgrep -u {uid} sleep")).status.success(),
        "the lingering process runs"
    );
    ok(remove(&sb, "gk-alice", &grant));
    assert!(!sb.user_exists("gk-alice"));
    assert!(
        !sb.root(&format!("pgrep -u {uid}")).status.success(),
        "a process still runs under the old uid"
    );
    assert!(
        !sb.root("test -e /home/gk-alice").status.success(),
        "the home directory is gone"
    );
    assert!(
        !sb.ssh(&k.file, "gk-alice", "true").status.success(),
        "the key is refused after removal"
    );

    // Removing again, with the user gone, succeeds.
    let again = ok(remove(&sb, "gk-alice", &grant));
    assert!(again.contains("already absent"), "{again}");
}

#[test]
fn sudo_only_when_granted() {
    let sb = Sandbox::start();
    let k = key(&sb, "bob");
    let grant = grant_id();
    ok(create(
        &sb,
        &create_params("gk-bob", &k.public, &grant, &ends_in(30), true),
    ));
    let out = ok(sb.ssh(&k.file, "gk-bob", "sudo -n id -u"));
    assert_eq!(out.trim(), "0");
    let dropin = format!("/etc/sudoers.d/gatekeeper-gk-bob-{grant}");
    assert_eq!(sb.root_ok(&format!("stat -c '%a %U' {dropin}")), "440 root");
    assert!(
        sb.root("ls -A /etc/sudoers.d | grep -q '^\\.gatekeeper'")
            .status
            .code()
            == Some(1),
        "no temporary file is left"
    );
    // Another user whose name starts with this one's keeps its own drop-in when this one goes.
    let kx = key(&sb, "bob-x");
    let gx = grant_id();
    ok(create(
        &sb,
        &create_params("gk-bob-x", &kx.public, &gx, &ends_in(30), true),
    ));
    ok(remove(&sb, "gk-bob", &grant));
    assert!(
        !sb.root(&format!("test -e {dropin}")).status.success(),
        "the drop-in is removed"
    );
    assert!(
        sb.root(&format!("test -e /etc/sudoers.d/gatekeeper-gk-bob-x-{gx}"))
            .status
            .success(),
        "gk-bob-x's drop-in is not gk-bob's"
    );
    assert_eq!(
        ok(sb.ssh(&kx.file, "gk-bob-x", "sudo -n id -u")).trim(),
        "0"
    );
    ok(remove(&sb, "gk-bob-x", &gx));
}

#[test]
fn overlapping_grants_own_their_key_lines() {
    let sb = Sandbox::start();
    let (ka, kb) = (key(&sb, "carol-a"), key(&sb, "carol-b"));
    let (ga, gb) = (grant_id(), grant_id());
    let a_end = ends_in(120);
    ok(create(
        &sb,
        &create_params("gk-carol", &ka.public, &ga, &a_end, true),
    ));
    ok(create(
        &sb,
        &create_params("gk-carol", &kb.public, &gb, &ends_in(30), false),
    ));
    assert!(ok(sb.ssh(&ka.file, "gk-carol", "id -un")).starts_with("gk-carol"));
    assert!(ok(sb.ssh(&kb.file, "gk-carol", "id -un")).starts_with("gk-carol"));
    // The second grant ends earlier: the account keeps the later expiry.
    let days: i64 = sb
        .root_ok("getent shadow gk-carol | cut -d: -f8")
        .parse()
        .unwrap();
    assert_eq!(days, account_expiry_day(&a_end));

    // Removing grant A removes only A's key (and A's sudo); the account stays for B.
    let out = ok(remove(&sb, "gk-carol", &ga));
    assert!(out.contains("1 other grant"), "{out}");
    assert!(sb.user_exists("gk-carol"));
    assert!(
        !sb.ssh(&ka.file, "gk-carol", "true").status.success(),
        "A's key is refused"
    );
    assert!(
        ok(sb.ssh(&kb.file, "gk-carol", "id -un")).starts_with("gk-carol"),
        "B's key still works"
    );
    assert!(
        !sb.ssh(&kb.file, "gk-carol", "sudo -n true")
            .status
            .success(),
        "A's sudo went with A"
    );

    ok(remove(&sb, "gk-carol", &gb));
    assert!(!sb.user_exists("gk-carol"));
}

#[test]
fn sshd_refuses_a_key_after_its_end_even_before_removal() {
    let sb = Sandbox::start();
    let k = key(&sb, "dave");
    let grant = grant_id();
    // The end must be a whole minute in the future: the next minute boundary at least 20 s away.
    let end = (Utc::now() + chrono::Duration::seconds(20))
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap()
        + chrono::Duration::minutes(1);
    ok(create(
        &sb,
        &create_params(
            "gk-dave",
            &k.public,
            &grant,
            &end.format("%Y%m%d%H%M").to_string(),
            true,
        ),
    ));
    assert!(
        ok(sb.ssh(
            &k.file,
            "gk-dave",
            "id -un; sudo -n true && echo sudo-works"
        ))
        .starts_with("gk-dave\nsudo-works"),
        "works before the end"
    );
    let early = sb.root("setpriv --reuid=gk-dave --regid=gk-dave --init-groups sudo -n true");
    assert!(
        early.status.success(),
        "the positive control: {}",
        text(&early)
    );
    while Utc::now() < end + chrono::Duration::seconds(2) {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(sb.user_exists("gk-dave"), "the account was not removed");
    assert!(
        !sb.ssh(&k.file, "gk-dave", "true").status.success(),
        "sshd refuses the key after its expiry-time"
    );
    // sudo refuses the rule after its end too (NOTAFTER), for a session that was already open. The
    // same command worked before the end, so this is the rule ending, not the way sudo is called.
    let late = sb.root("setpriv --reuid=gk-dave --regid=gk-dave --init-groups sudo -n true");
    assert!(
        !late.status.success(),
        "sudo still works after the end: {}",
        text(&late)
    );
    let log = std::fs::read_to_string(sb.path("sshd.log")).unwrap_or_default();
    assert!(log.contains("expired"), "sshd says why: {log}");
    // A create for an end that has passed is refused.
    let out = create(
        &sb,
        &create_params(
            "gk-dave",
            &k.public,
            &grant_id(),
            &end.format("%Y%m%d%H%M").to_string(),
            false,
        ),
    );
    assert!(!out.status.success());

    // Its removal never came; a later grant forgets it (record and key line), and the end of that
    // later grant deletes the account although the first grant was never removed.
    let k2 = key(&sb, "dave-2");
    let later = grant_id();
    ok(create(
        &sb,
        &create_params("gk-dave", &k2.public, &later, &ends_in(30), false),
    ));
    let keys = sb.root_ok("cat /home/gk-dave/.ssh/authorized_keys");
    assert!(!keys.contains(&grant) && keys.contains(&later), "{keys}");
    let records = sb.root_ok("ls /var/lib/gatekeeper/grants/gk-dave");
    assert_eq!(records, later);
    ok(remove(&sb, "gk-dave", &later));
    assert!(!sb.user_exists("gk-dave"));
    ok(remove(&sb, "gk-dave", &grant));
}

#[test]
fn hostile_values_are_refused_and_forced_past_the_patterns_execute_nothing() {
    let sb = Sandbox::start();
    let k = key(&sb, "erin");
    let sentinel = sb.path("pwned");
    let s = sentinel.display().to_string();
    let good = create_params("gk-erin", &k.public, &grant_id(), &ends_in(30), false);
    let hostile: Vec<(&str, String)> = vec![
        ("username", format!("gk-x'; touch {s}; '")),
        ("username", format!("gk-$(touch {s})")),
        ("username", format!("gk-`touch {s}`")),
        ("username", format!("gk-x\"; touch {s}; \"")),
        ("username", format!("gk-x\ntouch {s}")),
        (
            "username",
            format!("gk-x\n#GATEKEEPER-PARAMETERS-END\ntouch {s}"),
        ),
        ("username", "gk-x y".into()),
        ("username", format!("gk-{}", "a".repeat(40))),
        ("username", "root".into()),
        ("username", "gk-alice\n".into()),
        ("publicKey", format!("command=\"touch {s}\" {}", k.public)),
        ("publicKey", format!("{}\n{}", k.public, k.public)),
        ("publicKey", format!("{} comment", k.public)),
        ("publicKey", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ".into()),
        ("grantId", format!("x; touch {s}")),
        ("expiresAt", format!("$(touch {s})")),
        ("sudo", format!("true; touch {s}")),
        ("sudo", "yes".into()),
        // A forged block: a second set of values appended to the last one.
        (
            "sudo",
            "false\n#GATEKEEPER-PARAMETERS-END\n#GATEKEEPER-PARAMETERS-BEGIN\nusername=gk-evil"
                .into(),
        ),
        ("sudo", "false\nsudo=true".into()),
    ];
    for (name, value) in &hostile {
        let mut params = good.clone();
        params.insert((*name).to_owned(), value.clone());
        // SSM refuses them by allowedPattern …
        assert!(
            matches!(
                documents::render(DocumentKind::LinuxCreateUser, &params),
                Err(documents::DocumentError::Pattern { .. })
            ),
            "{name}={value:?} passes the pattern"
        );
        // … and forced past the patterns, the script executes nothing and changes nothing.
        let doc = documents::parse(DocumentKind::LinuxCreateUser).unwrap();
        let script = documents::substitute(&doc, &params);
        let out = sb.run_file(&script[0]);
        assert!(
            !out.status.success(),
            "{name}={value:?} was accepted: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("gatekeeper: refusing"),
            "{name}={value:?}: {}",
            text(&out)
        );
        assert!(!sentinel.exists(), "{name}={value:?} executed code");
        assert_eq!(
            sb.root_ok("getent passwd | grep -c '^gk-' || true"),
            "0",
            "{name}={value:?} created a user"
        );
    }
    for value in [format!("gk-x'; touch {s}; '"), format!("gk-x\ntouch {s}")] {
        let params = remove_params(&value, &grant_id());
        assert!(documents::render(DocumentKind::LinuxRemoveUser, &params).is_err());
        let doc = documents::parse(DocumentKind::LinuxRemoveUser).unwrap();
        let out = sb.run_file(&documents::substitute(&doc, &params)[0]);
        assert!(
            !out.status.success() && !sentinel.exists(),
            "{value:?}: {}",
            text(&out)
        );
    }

    // An account Gatekeeper did not create is never touched, by create or by remove.
    sb.root_ok("useradd --create-home gk-intruder");
    let out = create(
        &sb,
        &create_params("gk-intruder", &k.public, &grant_id(), &ends_in(30), true),
    );
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("not a Gatekeeper account"),
        "{}",
        text(&out)
    );
    let out = remove(&sb, "gk-intruder", &grant_id());
    assert!(!out.status.success(), "{}", text(&out));
    assert!(sb.user_exists("gk-intruder"));
    // Nor one that merely carries Gatekeeper's comment (a user may set their own with chfn): the uid
    // must also come from Gatekeeper's range.
    sb.root_ok("useradd --create-home --comment 'Gatekeeper temporary access' gk-mimic");
    let out = create(
        &sb,
        &create_params("gk-mimic", &k.public, &grant_id(), &ends_in(30), true),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!remove(&sb, "gk-mimic", &grant_id()).status.success());
    assert!(sb.user_exists("gk-mimic"));
    assert!(
        !sb.root("test -e /home/gk-intruder/.ssh/authorized_keys")
            .status
            .success()
    );
}

#[test]
fn links_planted_in_the_home_directory_gain_nothing() {
    let sb = Sandbox::start();
    let k = key(&sb, "frank");
    let grant = grant_id();
    let params = create_params("gk-frank", &k.public, &grant, &ends_in(60), false);
    ok(create(&sb, &params));
    // The user points ~/.ssh at root's directory and waits for the next run as root.
    ok(sb.ssh(
        &k.file,
        "gk-frank",
        "rm -rf ~/.ssh && ln -s /root/.ssh ~/.ssh",
    ));
    sb.root_ok("mkdir -p /root/.ssh && touch /root/.ssh/authorized_keys.before");
    ok(create(
        &sb,
        &create_params("gk-frank", &k.public, &grant_id(), &ends_in(60), false),
    ));
    assert!(
        !sb.root("test -e /root/.ssh/authorized_keys")
            .status
            .success(),
        "root's keys were written through the link"
    );
    assert!(
        sb.root("test -d /home/gk-frank/.ssh -a ! -L /home/gk-frank/.ssh")
            .status
            .success()
    );
    ok(remove(&sb, "gk-frank", &grant));
}

#[test]
fn what_the_user_writes_never_keeps_the_account() {
    let sb = Sandbox::start();
    let k = key(&sb, "grace");
    let grant = grant_id();
    ok(create(
        &sb,
        &create_params("gk-grace", &k.public, &grant, &ends_in(60), false),
    ));
    // The user forges a Gatekeeper line for a grant that does not exist and adds a key of their own,
    // hoping either keeps the account (and their access) after the grant ends.
    let own = key(&sb, "grace-own");
    let forged = format!(
        "echo '{} gatekeeper-grant={}' >>~/.ssh/authorized_keys && echo '{}' >>~/.ssh/authorized_keys",
        own.public,
        grant_id(),
        own.public
    );
    ok(sb.ssh(&k.file, "gk-grace", &forged));
    assert!(ok(sb.ssh(&own.file, "gk-grace", "id -un")).starts_with("gk-grace"));
    let out = ok(remove(&sb, "gk-grace", &grant));
    assert!(out.contains("is removed"), "{out}");
    assert!(!sb.user_exists("gk-grace"));
    assert!(!sb.ssh(&own.file, "gk-grace", "true").status.success());
}

#[test]
fn leftovers_go_with_the_account_and_uids_are_never_reused() {
    let sb = Sandbox::start();
    let k = key(&sb, "heidi");
    let grant = grant_id();
    ok(create(
        &sb,
        &create_params("gk-heidi", &k.public, &grant, &ends_in(60), false),
    ));
    let uid: u32 = sb.root_ok("id -u gk-heidi").parse().unwrap();
    assert!(
        (3_000_000..4_000_000).contains(&uid),
        "a uid from Gatekeeper's own range: {uid}"
    );
    ok(sb.ssh(
        &k.file,
        "gk-heidi",
        "touch /tmp/heidi /var/tmp/heidi /dev/shm/heidi && mkdir /tmp/heidi.d && touch /tmp/heidi.d/x",
    ));
    ok(remove(&sb, "gk-heidi", &grant));
    let left = sb.root(&format!(
        "find /tmp /var/tmp /dev/shm /var/spool -uid {uid} | grep ."
    ));
    assert_eq!(left.status.code(), Some(1), "{}", text(&left));
    assert!(!sb.root("getent group gk-heidi").status.success());
    assert!(
        !sb.root("test -e /var/lib/gatekeeper/grants/gk-heidi")
            .status
            .success()
    );

    // The same person again gets a fresh uid, never the old one.
    let again = grant_id();
    ok(create(
        &sb,
        &create_params("gk-heidi", &k.public, &again, &ends_in(60), false),
    ));
    let second: u32 = sb.root_ok("id -u gk-heidi").parse().unwrap();
    assert!(second > uid, "{second} after {uid}");
    assert_eq!(sb.root_ok("id -g gk-heidi"), second.to_string());
    // A uid taken by someone else in the meantime is skipped.
    sb.root_ok(&format!(
        "useradd --no-create-home --uid {} squatter",
        second + 1
    ));
    let kj = key(&sb, "judy");
    let gj = grant_id();
    ok(create(
        &sb,
        &create_params("gk-judy", &kj.public, &gj, &ends_in(60), false),
    ));
    assert_eq!(
        sb.root_ok("id -u gk-judy"),
        (second + 2).to_string(),
        "the squatter's uid is skipped"
    );
    ok(remove(&sb, "gk-heidi", &again));
    ok(remove(&sb, "gk-judy", &gj));
}

#[test]
fn a_full_disk_does_not_keep_the_account() {
    let sb = Sandbox::start_with_disk(Some("48m"));
    let k = key(&sb, "ivan");
    let grant = grant_id();
    ok(create(
        &sb,
        &create_params("gk-ivan", &k.public, &grant, &ends_in(60), false),
    ));
    // The user fills the volume that holds /etc and /home, and leaves a process behind.
    let _ = sb.ssh(
        &k.file,
        "gk-ivan",
        "nohup setsid sleep 900 >/dev/null 2>&1 & dd if=/dev/zero of=~/fill bs=1M >/dev/null 2>&1; true",
    );
    assert!(
        !sb.root("echo x >/etc/gatekeeper-probe").status.success(),
        "the volume is not full: the test proves nothing"
    );
    let uid = sb.root_ok("id -u gk-ivan");
    let out = ok(remove(&sb, "gk-ivan", &grant));
    assert!(out.contains("is removed"), "{out}");
    assert!(!sb.user_exists("gk-ivan"));
    assert!(!sb.root("test -e /home/gk-ivan").status.success());
    assert!(!sb.root(&format!("pgrep -u {uid}")).status.success());
    assert!(!sb.ssh(&k.file, "gk-ivan", "true").status.success());
}

#[test]
fn a_removal_stopped_half_way_is_finished_and_never_inherited() {
    let sb = Sandbox::start();
    let k = key(&sb, "kim");
    let first = grant_id();
    ok(create(
        &sb,
        &create_params("gk-kim", &k.public, &first, &ends_in(60), false),
    ));
    ok(sb.ssh(&k.file, "gk-kim", "echo mine >~/notes && touch /tmp/kim"));
    let old_uid = sb.root_ok("id -u gk-kim");
    // A remove stopped right after userdel (the agent restarted, the command timed out): the home,
    // the group and the files in /tmp are still there.
    sb.root_ok("pkill -KILL -u gk-kim; sleep 0.2; userdel gk-kim");
    assert!(sb.root("test -d /home/gk-kim").status.success());

    // A new grant for the same person gets a fresh account that inherits nothing.
    let second = grant_id();
    ok(create(
        &sb,
        &create_params("gk-kim", &k.public, &second, &ends_in(60), false),
    ));
    assert_ne!(sb.root_ok("id -u gk-kim"), old_uid);
    let out = ok(sb.ssh(&k.file, "gk-kim", "id -un; ls -A ~"));
    assert!(out.starts_with("gk-kim\n"), "{out}");
    assert!(!out.contains("notes"), "the old home was inherited: {out}");

    // Stopped half-way again; the retried remove finds the user gone and finishes the cleanup.
    let new_uid = sb.root_ok("id -u gk-kim");
    sb.root_ok("pkill -KILL -u gk-kim; sleep 0.2; userdel gk-kim");
    let out = ok(remove(&sb, "gk-kim", &second));
    assert!(out.contains("already absent"), "{out}");
    assert!(!sb.root("test -e /home/gk-kim").status.success());
    assert!(!sb.root("getent group gk-kim").status.success());
    let left = sb.root(&format!(
        "find /tmp /var/tmp /dev/shm -uid {new_uid} | grep ."
    ));
    assert_eq!(left.status.code(), Some(1), "{}", text(&left));
    ok(remove(&sb, "gk-kim", &first));

    // A home directory that no Gatekeeper account left is never taken over or deleted.
    sb.root_ok("mkdir /home/gk-lee && touch /home/gk-lee/keep");
    let kl = key(&sb, "lee");
    let out = create(
        &sb,
        &create_params("gk-lee", &kl.public, &grant_id(), &ends_in(60), false),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("refusing"), "{}", text(&out));
    assert!(!sb.user_exists("gk-lee"));
    assert!(sb.root("test -e /home/gk-lee/keep").status.success());
    let out = ok(remove(&sb, "gk-lee", &grant_id()));
    assert!(out.contains("already absent"), "{out}");
    assert!(sb.root("test -e /home/gk-lee/keep").status.success());
}

#[test]
fn sudo_ends_with_its_grant_and_root_processes_with_the_account() {
    let sb = Sandbox::start();
    let (ka, kb) = (key(&sb, "sam-a"), key(&sb, "sam-b"));
    let (with_sudo, without) = (grant_id(), grant_id());
    ok(create(
        &sb,
        &create_params("gk-sam", &ka.public, &with_sudo, &ends_in(120), true),
    ));
    ok(create(
        &sb,
        &create_params("gk-sam", &kb.public, &without, &ends_in(60), false),
    ));
    let dropin = sb.root_ok(&format!("cat /etc/sudoers.d/gatekeeper-gk-sam-{with_sudo}"));
    assert!(
        dropin.contains(" NOTAFTER=20") && dropin.contains("Z NOPASSWD: ALL"),
        "{dropin}"
    );
    // A root shell opened through sudo, and a process of the user.
    start_as_root_in_session_of(&sb, "gk-sam", "sleep 1001");
    ok(sb.ssh(
        &kb.file,
        "gk-sam",
        "nohup setsid sleep 1002 >/dev/null 2>&1 & echo ok",
    ));
    assert!(sb.root("pgrep -u 0 -f 'sleep 100[1]'").status.success());

    // The sudo grant ends while the other keeps the account: its root shell ends, the user's own
    // processes stay.
    let out = ok(remove(&sb, "gk-sam", &with_sudo));
    assert!(out.contains("sudo of gk-sam ended"), "{out}");
    assert!(sb.user_exists("gk-sam"));
    assert!(
        !sb.root("pgrep -f 'sleep 100[1]'").status.success(),
        "the root shell survived: {out}"
    );
    assert!(
        sb.root("pgrep -u gk-sam -f 'sleep 100[2]'")
            .status
            .success(),
        "the user's own process was ended"
    );
    // Decided from what is true now, not from the grant's record: a retry (the record is gone by
    // then) still ends a root shell of the user's sessions.
    start_as_root_in_session_of(&sb, "gk-sam", "sleep 1004");
    let out = ok(remove(&sb, "gk-sam", &with_sudo));
    assert!(out.contains("sudo of gk-sam ended"), "{out}");
    assert!(
        !sb.root("pgrep -f 'sleep 100[4]'").status.success(),
        "{out}"
    );
    assert!(!sb.ssh(&kb.file, "gk-sam", "sudo -n true").status.success());
    assert!(ok(sb.ssh(&kb.file, "gk-sam", "id -un")).starts_with("gk-sam"));
    // The account's last-resort expiry follows the grant that remains.
    let days: i64 = sb
        .root_ok("getent shadow gk-sam | cut -d: -f8")
        .parse()
        .unwrap();
    let remaining: i64 = sb
        .root_ok(&format!(
            "cut -d' ' -f1 /var/lib/gatekeeper/grants/gk-sam/{without}"
        ))
        .parse()
        .unwrap();
    assert_eq!(days, (remaining + 86400) / 86400 + 1);

    // When the account goes, so does every root process of its sessions.
    start_as_root_in_session_of(&sb, "gk-sam", "sleep 1003");
    ok(remove(&sb, "gk-sam", &without));
    assert!(!sb.user_exists("gk-sam"));
    assert!(
        !sb.root("pgrep -f 'sleep 100[3]'").status.success(),
        "a root process of the session survived"
    );
}
