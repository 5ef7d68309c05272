//! A PostgreSQL cluster of a test's own: `initdb` in a temporary directory, started with
//! `pg_ctl` on a spare port of 127.0.0.1 (never the shared server), removed when dropped. As
//! root, the cluster runs as the `postgres` user (`runuser`), as PostgreSQL refuses to run as
//! root. Anything that fails panics with the tool's output: these tests never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A free TCP port of 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private cluster (see the module documentation).
pub struct PrivateCluster {
    /// The temporary directory (`data/` is the cluster, `log` its log).
    pub dir: PathBuf,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Whether the tools run as the `postgres` user.
    pub as_postgres: bool,
}

impl PrivateCluster {
    /// A server tool: Debian keeps them out of PATH, under `/usr/lib/postgresql/*/bin/`.
    pub fn bin(name: &str) -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        versions.sort();
        for v in versions.iter().rev() {
            let p = v.join("bin").join(name);
            if p.exists() {
                return p;
            }
        }
        PathBuf::from(name)
    }

    fn run(&self, program: &Path, args: &[&str]) -> std::process::Output {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} (PostgreSQL's server tools are needed: scripts/ensure-postgres \
                 installs them): {e}",
                program.display()
            )
        })
    }

    /// Creates and starts a cluster with this `pg_hba.conf`.
    pub fn start(hba: &str) -> Self {
        Self::start_with(hba, "", &[])
    }

    /// Creates and starts a cluster with this `pg_hba.conf`, `conf` appended to its
    /// `postgresql.conf`, and `files` (name, contents) written into its data directory,
    /// readable by the server only (as a key file must be).
    pub fn start_with(hba: &str, conf: &str, files: &[(&str, &str)]) -> Self {
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!(
            "waguard-pg-private-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = PrivateCluster {
            dir,
            port: free_port(),
            as_postgres,
        };
        cluster.chown(&cluster.dir);
        let data = cluster.dir.join("data");
        let out = cluster.run(
            &Self::bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        if !conf.is_empty() {
            let path = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push('\n');
            text.push_str(conf);
            text.push('\n');
            std::fs::write(&path, text).unwrap();
        }
        for (name, contents) in files {
            let path = data.join(name);
            std::fs::write(&path, contents).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            cluster.chown(&path);
        }
        cluster.pg_ctl(&["start"]);
        cluster
    }

    fn chown(&self, path: &Path) {
        if !self.as_postgres {
            return;
        }
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown of {} failed", path.display());
    }

    /// Runs `pg_ctl` with `action` on this cluster.
    pub fn pg_ctl(&self, action: &[&str]) {
        pg_ctl_at(&self.dir, self.port, self.as_postgres, action);
    }

    /// The URL of `user` on 127.0.0.1.
    pub fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/postgres", self.port)
    }
}

/// Runs `pg_ctl` on the private cluster in `dir`; panics with its log when it fails.
pub fn pg_ctl_at(dir: &Path, port: u16, as_postgres: bool, action: &[&str]) {
    let data = dir.join("data");
    let log = dir.join("log");
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        dir.display()
    );
    let program = PrivateCluster::bin("pg_ctl");
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let out = cmd
        .args(["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()])
        .args(["-o", &options, "-w", "-t", "30"])
        .args(action)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "pg_ctl {action:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.run(
            &Self::bin("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
