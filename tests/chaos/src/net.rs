//! Each node in its own network namespace with its own address, joined by a
//! bridge, so partitions are real: iptables DROP inside the namespaces cuts
//! node pairs both ways, and TCP sees silence, not a reset. The workload runs
//! in the root namespace, reaching every node over a veth to the bridge.
//! Everything made here carries a per-run prefix and is removed on drop.

use std::process::Command;

use anyhow::{bail, Context as _};

pub struct Net {
    prefix: String,
    subnet: u8,
    nodes: usize,
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Why namespaces cannot be used here, if they cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["ip", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` not installed"));
        }
    }
    None
}

impl Net {
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    fn switch_ns(&self) -> String {
        format!("{}sw", self.prefix)
    }

    pub fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, 10 + i)
    }

    /// Builds the bridge and one namespace per node (ids 1..=nodes).
    pub fn setup(nodes: usize) -> anyhow::Result<Net> {
        let subnet = (std::process::id() % 200 + 20) as u8;
        let net = Net {
            prefix: format!("rqc{subnet}"),
            subnet,
            nodes,
        };
        net.teardown(); // leftovers of a crashed run with the same prefix
        let sw = net.switch_ns();
        run(&["ip", "netns", "add", &sw])?;
        run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        for i in 1..=nodes {
            let ns = net.node_ns(i);
            let (a, b) = (
                format!("{}v{i}a", net.prefix),
                format!("{}v{i}b", net.prefix),
            );
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
            run(&["ip", "link", "set", &a, "netns", &ns])?;
            run(&["ip", "link", "set", &b, "netns", &sw])?;
            run(&["ip", "-n", &sw, "link", "set", &b, "master", "br0"])?;
            run(&["ip", "-n", &sw, "link", "set", &b, "up"])?;
            let cidr = format!("{}/24", net.addr(i));
            run(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", &a])?;
            run(&["ip", "-n", &ns, "link", "set", &a, "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        let (h, hb) = (format!("{}h", net.prefix), format!("{}hb", net.prefix));
        run(&["ip", "link", "add", &h, "type", "veth", "peer", "name", &hb])?;
        run(&["ip", "link", "set", &hb, "netns", &sw])?;
        run(&["ip", "-n", &sw, "link", "set", &hb, "master", "br0"])?;
        run(&["ip", "-n", &sw, "link", "set", &hb, "up"])?;
        let host = format!("10.77.{subnet}.1/24");
        run(&["ip", "addr", "add", &host, "dev", &h])?;
        run(&["ip", "link", "set", &h, "up"])?;
        Ok(net)
    }

    /// Cuts `a` and `b` apart, both directions.
    pub fn cut(&self, a: usize, b: usize) -> anyhow::Result<()> {
        for (here, there) in [(a, b), (b, a)] {
            let ns = self.node_ns(here);
            let src = self.addr(there);
            run(&[
                "ip", "netns", "exec", &ns, "iptables", "-A", "INPUT", "-s", &src, "-j", "DROP",
            ])?;
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> anyhow::Result<()> {
        for i in 1..=self.nodes {
            let ns = self.node_ns(i);
            run(&["ip", "netns", "exec", &ns, "iptables", "-F", "INPUT"])?;
        }
        Ok(())
    }

    fn teardown(&self) {
        // Deleting a namespace deletes the veth ends in it, and their peers.
        for i in 1..=self.nodes {
            let _ = run(&["ip", "netns", "del", &self.node_ns(i)]);
        }
        let _ = run(&["ip", "netns", "del", &self.switch_ns()]);
        let _ = run(&["ip", "link", "del", &format!("{}h", self.prefix)]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}
