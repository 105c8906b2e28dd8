//! deploy/slurm on a real Slurm: the test starts a single-node cluster of its own (munged,
//! slurmctld and slurmd from Debian's `munge` and `slurm-wlm`, with a generated key and
//! configuration in a temporary folder), submits a 3-shard extract and its merge with
//! `submit.sh --wait`, and checks the merged cache against a plain extract's, byte for byte.
//!
//! Without those programs it skips, but fails when `CI` is set: `.ci/run` installs them. The
//! daemons run as the current user (root in CI), and are stopped by their process ids when the
//! test ends, however it ends.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_cache, extract, make_dataset, repo, tiny_model, BYTE_EXACT_MODEL};

const PROGRAMS: [&str; 5] = ["munged", "slurmctld", "slurmd", "sbatch", "sinfo"];

/// Whether the programs of a Slurm node are installed; where they are not, the test skips, or
/// fails in CI.
fn slurm_installed() -> bool {
    let missing: Vec<&str> = PROGRAMS
        .into_iter()
        .filter(|p| {
            Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .stdout(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{} not found: install Debian's slurm-wlm and munge (apt-get install slurm-wlm munge)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}; the Slurm test must run in CI");
    }
    eprintln!("skipping: {message} (set CI to make this a failure)");
    false
}

/// The daemons this test started: stopped by their process ids when dropped, so a failed
/// assertion never leaves a cluster running.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.daemons.iter_mut().rev() {
            // SIGTERM lets slurmctld and slurmd end their jobs and save their state.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let key = dir.join("munge/munge.key");
        let mut random = vec![0u8; 1024];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut random).unwrap();
        std::fs::write(&key, random).unwrap();
        // munged refuses a key that others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let socket = dir.join("munge/munge.socket");
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=headstart\n\
                 SlurmctldHost=localhost\n\
                 SlurmUser={user}\n\
                 SlurmdUser={user}\n\
                 SlurmctldPort={}\n\
                 SlurmdPort={}\n\
                 AuthType=auth/munge\n\
                 AuthInfo=socket={}\n\
                 CredType=cred/munge\n\
                 StateSaveLocation={d}/state\n\
                 SlurmdSpoolDir={d}/spool\n\
                 SlurmctldPidFile={d}/slurmctld.pid\n\
                 SlurmdPidFile={d}/slurmd.pid\n\
                 SlurmctldLogFile={d}/log/slurmctld.log\n\
                 SlurmdLogFile={d}/log/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\n\
                 SelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_CPU\n\
                 JobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\n\
                 MpiDefault=none\n\
                 ReturnToService=2\n\
                 NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
                 PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
                free_port(),
                free_port(),
                socket.display(),
                user = user.trim(),
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            conf,
            daemons: Vec::new(),
        };
        cluster.spawn(
            "munged",
            Command::new("munged")
                .arg("--foreground")
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--pid-file={d}/munge/munged.pid"))
                .arg(format!("--log-file={d}/log/munged.log"))
                .arg(format!("--seed-file={d}/munge/munged.seed")),
        );
        cluster.wait_for("munged's socket", || socket.exists());
        let slurm_conf = cluster.conf.clone();
        cluster.spawn(
            "slurmctld",
            Command::new("slurmctld")
                .args(["-D", "-i"])
                .env("SLURM_CONF", &slurm_conf),
        );
        cluster.spawn(
            "slurmd",
            Command::new("slurmd")
                .args(["-D", "-N", "localhost"])
                .env("SLURM_CONF", &slurm_conf),
        );
        cluster.wait_for("the node to be idle", || {
            Command::new("sinfo")
                .args(["-h", "-o", "%T"])
                .env("SLURM_CONF", &slurm_conf)
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    fn spawn(&mut self, name: &'static str, command: &mut Command) {
        let log = std::fs::File::create(self.dir.join(format!("log/{name}.out"))).unwrap();
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name, child));
    }

    /// Waits up to 60 s for `ready`, failing with the daemons' logs if it never comes or a
    /// daemon ends.
    fn wait_for(&mut self, what: &str, ready: impl Fn() -> bool) {
        let started = Instant::now();
        while !ready() {
            let ended = self
                .daemons
                .iter_mut()
                .find_map(|(name, child)| child.try_wait().ok().flatten().map(|s| format!("{name} ended ({s})")));
            if let Some(ended) =
                ended.or_else(|| (started.elapsed() > Duration::from_secs(60)).then(|| "timeout".into()))
            {
                panic!("waiting for {what}: {ended}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every log of the cluster and its jobs, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        for folder in [self.dir.join("log"), self.dir.join("jobs")] {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let content = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = content.lines().rev().take(30).collect();
                text += &format!("--- {}\n", entry.path().display());
                for line in tail.into_iter().rev() {
                    text += line;
                    text += "\n";
                }
            }
        }
        text
    }
}

/// A port nothing listens on now, so that two clusters (two test runs) never share one.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn job_array_and_merge_on_a_real_slurm_equal_one_extract() {
    if !slurm_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&tmp.path().join("cluster"));
    let data = tmp.path().join("data");
    make_dataset(&data, 3, 12);
    let (ws, jobs) = (tmp.path().join("ws"), cluster.dir.join("jobs"));
    std::fs::create_dir_all(&jobs).unwrap();

    let extract_args = format!("--model {} --batch-size 4", tiny_model(BYTE_EXACT_MODEL));
    let submitted = Command::new("timeout")
        .arg("300")
        .arg(repo().join("deploy/slurm/submit.sh"))
        .args(["3", "--wait"])
        .current_dir(&jobs)
        .env("SLURM_CONF", &cluster.conf)
        .env("HEADSTART_DATA", &data)
        .env("HEADSTART_WORKSPACE", &ws)
        .env("HEADSTART_BIN", env!("CARGO_BIN_EXE_headstart"))
        .env("HEADSTART_EXTRACT_ARGS", &extract_args)
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "submit.sh failed ({}): {}{}\n{}",
        submitted.status,
        String::from_utf8_lossy(&submitted.stdout),
        String::from_utf8_lossy(&submitted.stderr),
        cluster.logs()
    );
    // The array's tasks knew their number and the array's size.
    for k in 0..3 {
        assert!(
            ws.join(format!("shards/{k}-of-3/shard.json")).is_file(),
            "{}",
            cluster.logs()
        );
    }

    let plain = tmp.path().join("plain");
    extract(&plain, &data, &[]);
    assert_same_cache(&ws, &plain, "Slurm's merge");
}
