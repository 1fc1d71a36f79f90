//! nginx in front of several serve instances, as an agency would run
//! them: TCP balanced by its stream module, TLS passed through (devices pin
//! the servers' key), idle device streams kept open.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A running nginx, stopped when dropped: one process (`master_process
/// off`), since workers outlive a master that is killed.
pub struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    /// Starts nginx (Debian's, with `libnginx-mod-stream`) in `dir`,
    /// balancing a free loopback port over `upstreams`.
    pub fn start(dir: &Path, upstreams: &[u16]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n"))
            .collect();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
                 master_process off;\nerror_log {dir}/nginx-error.log;\npid {dir}/nginx.pid;\n\
                 events {{ worker_connections 65536; }}\n\
                 stream {{\n  upstream countersign {{\n{servers}  }}\n\
                 \x20 server {{\n    listen 127.0.0.1:{port};\n    proxy_pass countersign;\n\
                 \x20   proxy_connect_timeout 1s;\n    proxy_timeout 1h;\n  }}\n}}\n",
                dir = dir.display(),
            ),
        )?;
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting nginx (apt-get install nginx libnginx-mod-stream)")?;
        // Stopped on drop, should it not come up.
        let mut nginx = Nginx { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = nginx.child.try_wait()?.is_some();
            if exited || Instant::now() > deadline {
                bail!(
                    "nginx did not start (see {}/nginx-error.log; its stream module is \
                     Debian's libnginx-mod-stream)",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    /// The address the driver uses.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
