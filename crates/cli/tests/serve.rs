//! `runnel serve` as a process: the bootstrap notice once on stdout, JSON logs on stderr, health checks, exit 0 on SIGTERM, exit 2 on invalid settings.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

struct Serve {
    child: Child,
    addr: SocketAddr,
    stderr: std::thread::JoinHandle<String>,
}

/// Starts `runnel serve` on `data_dir` and port 0, and waits for its `ready` log line.
fn serve(data_dir: &Path) -> Serve {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("runnel"))
        .args(["serve", "--listen", "127.0.0.1:0", "--executor-slots", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUNNEL__LOGGING__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runnel serve");
    let stderr = child.stderr.take().expect("stderr");
    let (ready_tx, ready_rx) = mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("stderr line");
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"] == "ready"
                && let Some(listen) = event["listen"].as_str()
            {
                let _ = ready_tx.send(listen.to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let Ok(listen) = ready_rx.recv_timeout(WAIT) else {
        let _ = child.kill();
        panic!("never ready:\n{}", stderr.join().unwrap_or_default());
    };
    Serve {
        child,
        addr: listen.parse().expect("an address"),
        stderr,
    }
}

impl Serve {
    /// SIGTERM, then the exit code, stdout and stderr.
    fn terminate(mut self) -> (Option<i32>, String, String) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("send SIGTERM");
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        let status = self.child.wait().expect("runnel exits");
        (status.code(), stdout, self.stderr.join().expect("stderr"))
    }
}

fn http_status(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code")
}

#[test]
fn serve_prints_credentials_once_answers_health_checks_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(dir.path());
    assert_eq!(http_status(server.addr, "/health/live"), 200);
    assert_eq!(http_status(server.addr, "/health/ready"), 200);
    let (code, stdout, stderr) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");

    let file = dir.path().join("bootstrap-credentials.json");
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("credentials file")).expect("JSON");
    let password = credentials["password"].as_str().expect("password");
    let sk = credentials["sk"].as_str().expect("sk");
    assert_eq!(stdout.matches(password).count(), 1, "{stdout}");
    assert!(stdout.contains(sk), "{stdout}");
    assert!(
        !stderr.contains(password) && !stderr.contains(sk),
        "secrets never reach the logs"
    );
    assert!(stderr.contains("\"stopped\""), "{stderr}");

    let again = serve(dir.path());
    let (code, stdout, _) = again.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "", "nothing is printed after the first start");
}

#[test]
fn invalid_settings_are_reported_with_their_origin_and_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(assert_cmd::cargo::cargo_bin("runnel"))
        .args(["serve", "--listen", "nonsense"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUNNEL__ENGINE__LEASES", "30s")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.listen (from --listen)"), "{stderr}");
    assert!(
        stderr.contains("unknown setting `engine.leases` (from RUNNEL__ENGINE__LEASES)"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path())
            .expect("list")
            .next()
            .is_none(),
        "nothing was created"
    );
}
