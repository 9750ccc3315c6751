//! Start-up, restart, amnesia, readiness, the admin socket, configuration precedence and
//! process hygiene, against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::{BIN, Server};
use http_body_util::Full;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_creates_private_material_and_a_restart_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_in(&dir, &[], &[]);
    assert_eq!(mode(&dir), 0o700);
    for f in ["ca.key", "server.key", "kek.key", "signing.key"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let first = s.logs_with("listening")[0].clone();
    assert_eq!(first["created"], true);
    let files: Vec<Vec<u8>> = ["ca.pem", "ca.key", "kek.key", "signing.key", "instance-id"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(s.get("/healthz").await.status, 200);
    assert!(s.stop().success(), "SIGTERM is a clean exit");
    assert!(!dir.join("admin.sock").exists(), "socket removed at exit");

    let s = Server::start_in(&dir, &[], &[]);
    let second = s.logs_with("listening")[0].clone();
    assert_eq!(second["created"], false);
    for k in ["instance_id", "kek_kid", "signing_kid"] {
        assert_eq!(first[k], second[k], "{k}");
    }
    let again: Vec<Vec<u8>> = ["ca.pem", "ca.key", "kek.key", "signing.key", "instance-id"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(files, again);
    // A client holding the first start's ca.pem still verifies the restarted server.
    assert_eq!(s.get("/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amnesia_leaves_no_file_behind() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd.path())
        .args(["serve", "--amnesia", "--listen", "127.0.0.1:0"]);
    let mut s = Server::spawn(cmd, &[]);
    let ca = s.logs_with("amnesia mode: nothing is written to disk")[0]["ca_pem"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ca_pem = ca;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(s.stop().success());
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "amnesia wrote {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_to_503_when_storage_fails_and_back_when_it_recovers() {
    let s = Server::start(&["--readiness-interval-ms", "100"]);
    let ready = s.get("/readyz").await;
    assert_eq!(ready.status, 200);

    // The storage probe must land a durable write in the data directory. A directory in
    // the probe's place makes that write fail as a full or read-only disk would (the tests
    // run as root, which ignores permission bits, so a chmod would prove nothing).
    let probe = s.dir.join(".ready-probe");
    let _ = std::fs::remove_file(&probe);
    std::fs::create_dir(&probe).unwrap();
    std::fs::write(probe.join("blocker"), b"x").unwrap();
    let mut seen = None;
    for _ in 0..50 {
        let r = s.get("/readyz").await;
        if r.status == 503 {
            seen = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = seen.expect("readyz never went to 503");
    assert_eq!(r.code(), "not_ready");
    assert!(r.json()["detail"].as_str().unwrap().contains("storage"));
    // Liveness is unaffected.
    assert_eq!(s.get("/healthz").await.status, 200);

    std::fs::remove_dir_all(&probe).unwrap();
    let mut back = false;
    for _ in 0..50 {
        if s.get("/readyz").await.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "readyz did not recover");
}

fn admin_status(socket: &std::path::Path, as_uid: Option<u32>) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["admin", "status", "--json", "--socket"])
        .arg(socket);
    if let Some(uid) = as_uid {
        cmd.uid(uid).gid(uid);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_socket_is_private_and_refuses_uids_off_the_allow_list() {
    let s = Server::start(&[]);
    let sock = s.dir.join("admin.sock");
    assert_eq!(mode(&s.dir), 0o700);
    assert_eq!(mode(&sock), 0o600);

    let ok = admin_status(&sock, None);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["dumpable"], false, "PR_SET_DUMPABLE is 0");
    assert_eq!(v["instance_id"], s.logs_with("listening")[0]["instance_id"]);

    if !common::is_root() {
        eprintln!(
            "not root: cannot act as another uid; permission bits and allow-list unit tests cover the rest"
        );
        return;
    }
    // Loosen the file modes as a careless operator might: the uid check still holds.
    let nobody = 65534;
    let before = s.metric(r#"rejected_total{reason="admin_peer_uid"}"#).await;
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = admin_status(&sock, Some(nobody));
    assert!(!refused.status.success(), "uid {nobody} was let in");
    let after = s.metric(r#"rejected_total{reason="admin_peer_uid"}"#).await;
    assert_eq!(after - before, 1.0);
    let log = s.await_logs("admin socket connection refused", 1, |l| {
        l["peer_uid"] == nobody
    });
    assert_eq!(log.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_on_the_allow_list_is_admitted() {
    if !common::is_root() {
        eprintln!("not root: cannot act as another uid");
        return;
    }
    let s = Server::start(&["--admin-uids", "0,65534"]);
    let sock = s.dir.join("admin.sock");
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let ok = admin_status(&sock, Some(65534));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_precedence_is_flag_then_environment_then_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bulwark.toml");
    std::fs::write(&file, "max_body_bytes = 50\n").unwrap();
    let dir = tmp.path().join("data");
    let body = |n: usize| {
        http::Request::post("/healthz")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(vec![b'x'; n])))
            .unwrap()
    };
    let cfg = file.to_str().unwrap();

    let s = Server::start_in(&dir, &["--config", cfg], &[]);
    assert_eq!(
        s.request(body(80)).await.code(),
        "body_too_large",
        "file: 50"
    );
    drop(s);

    let env = [("BULWARK_MAX_BODY_BYTES", "100")];
    let s = Server::start_in(&dir, &["--config", cfg], &env);
    assert_eq!(
        s.request(body(80)).await.status,
        405,
        "env 100 beats file 50"
    );
    assert_eq!(s.request(body(150)).await.code(), "body_too_large");
    drop(s);

    let s = Server::start_in(&dir, &["--config", cfg, "--max-body-bytes", "200"], &env);
    assert_eq!(
        s.request(body(150)).await.status,
        405,
        "flag 200 beats env 100"
    );
}

#[test]
fn a_typo_in_the_config_file_stops_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bulwark.toml");
    std::fs::write(&file, "max_body_byte = 50\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--amnesia", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_body_byte"));
}

#[test]
fn serve_help_documents_every_option() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--config",
        "--data-dir",
        "--listen",
        "--amnesia",
        "--admin-socket",
        "--admin-uids",
        "--server-names",
        "--log-level",
        "--request-timeout-ms",
        "--header-read-timeout-ms",
        "--handshake-timeout-ms",
        "--max-inflight",
        "--max-connections",
        "--rate-limit-rps",
        "--rate-limit-burst",
        "--max-body-bytes",
        "--max-decoded-bytes",
        "--max-decompression-ratio",
        "--readiness-interval-ms",
    ] {
        assert!(help.contains(opt), "missing {opt}");
    }
    assert!(
        help.contains("BULWARK_MAX_BODY_BYTES"),
        "env names are documented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_dumps_are_disabled() {
    let s = Server::start(&[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

#[test]
fn a_wide_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .env("BULWARK_NODE_LISTEN", "127.0.0.1:0")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 700"));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_panic_holding_a_secret_does_not_print_it() {
    let out = Command::new(BIN)
        .args(["selftest", "panic-hook"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101), "the process panicked");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("payload withheld"), "{all}");
    assert!(all.contains("main.rs"), "the location is logged: {all}");
    assert!(!all.contains("selftest-secret-7f3a91c2"), "{all}");
}
