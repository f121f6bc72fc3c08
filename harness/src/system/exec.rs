//! `--system exec`: any service that speaks the client protocol (`docs/protocol.md`), started
//! from a command template (`docs/systems.md` states the contract).
//!
//! The template is split into words as a shell would (quotes, backslashes; no expansion, no
//! shell runs), and in each word these placeholders are replaced:
//!
//! | placeholder | what |
//! | --- | --- |
//! | `{id}` | the node's id, 1 to n |
//! | `{listen}` | the address to listen on for peer traffic |
//! | `{client}` | the address to listen on for clients |
//! | `{data_dir}` | the node's own directory, kept across restarts |
//! | `{peers}` | `ID=ADDR,...`: the address this node must use to reach each other node (a port of the harness's links) |
//! | `{peer_clients}` | `ID=ADDR,...`: the other nodes' client addresses, for leader hints |
//! | `{tick_ms}` | the run's `--tick-ms` |

use std::process::Command;

use super::Launch;
use crate::cluster::NodeInfo;

const PLACEHOLDERS: [&str; 7] =
    ["id", "listen", "client", "data_dir", "peers", "peer_clients", "tick_ms"];

/// Starts the nodes of `--system exec` from the template.
#[derive(Clone, Debug)]
pub struct ExecNode {
    /// The template's words, placeholders still in them.
    words: Vec<String>,
    tick_ms: u64,
}

impl ExecNode {
    /// Parses `template`, refusing one that cannot start a node the harness can reach.
    pub fn parse(template: &str, tick_ms: u64) -> Result<ExecNode, String> {
        let mut words =
            shell_words::split(template).map_err(|e| format!("--exec {template:?}: {e}"))?;
        if words.is_empty() {
            return Err("--exec is empty: give the command that starts a node".into());
        }
        // Nodes run in their own directories: a relative path is the harness's.
        let program = super::find_program(&words[0])
            .ok_or_else(|| format!("--exec: the program {:?} is not found", words[0]))?;
        words[0] = std::path::absolute(&program)
            .map_err(|e| format!("--exec: {}: {e}", program.display()))?
            .display()
            .to_string();
        for word in &words {
            expand(word, |name| PLACEHOLDERS.contains(&name).then(String::new)).map_err(
                |name| {
                    format!(
                        "--exec: unknown placeholder {{{name}}}; the placeholders are {}",
                        PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                    )
                },
            )?;
        }
        for needed in ["{client}", "{listen}", "{peers}"] {
            if !words.iter().any(|w| w.contains(needed)) {
                return Err(format!(
                    "--exec: the command has no {needed}: the harness gives every node its \
                     addresses, and the node must use them"
                ));
            }
        }
        Ok(ExecNode { words, tick_ms })
    }

    /// The template's words for `node`.
    fn words_for(&self, node: &NodeInfo, cluster: &[NodeInfo]) -> Vec<String> {
        let list = |pairs: Vec<(u64, String)>| {
            pairs.iter().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",")
        };
        let peers = list(node.peers.iter().map(|(id, a)| (*id, a.to_string())).collect());
        let peer_clients = list(
            cluster
                .iter()
                .filter(|n| n.id != node.id)
                .map(|n| (n.id, n.client_addr.to_string()))
                .collect(),
        );
        let values = [
            node.id.to_string(),
            node.peer_addr.to_string(),
            node.client_addr.to_string(),
            node.dir.display().to_string(),
            peers,
            peer_clients,
            self.tick_ms.to_string(),
        ];
        let value = |name: &str| {
            let at = PLACEHOLDERS.iter().position(|p| *p == name)?;
            Some(values[at].clone())
        };
        // `parse` refused unknown placeholders, so every word expands.
        self.words.iter().map(|word| expand(word, value).unwrap_or_else(|_| word.clone())).collect()
    }
}

/// `word` with each `{name}` replaced by `value(name)`, in one pass (a value put in is never
/// read again for placeholders); the first name `value` does not know is the error. A `{`
/// without a closing `}` stays as it is.
fn expand(word: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + len];
        out.push_str(&rest[..open]);
        out.push_str(&value(name).ok_or_else(|| name.to_string())?);
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Launch for ExecNode {
    fn command(&self, node: &NodeInfo, cluster: &[NodeInfo]) -> Command {
        let words = self.words_for(node, cluster);
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node(id: u64) -> NodeInfo {
        let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        NodeInfo {
            id,
            peer_addr: addr(7000 + id as u16),
            client_addr: addr(8000 + id as u16),
            dir: format!("/runs/r 1/nodes/n{id}").into(),
            peers: (1..=3)
                .filter(|&p| p != id)
                .map(|p| (p, addr(9000 + 10 * id as u16 + p as u16)))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn placeholders_are_replaced_word_by_word() {
        let exec = ExecNode::parse(
            "/bin/true --id {id} --listen {listen} --client={client} --dir '{data_dir}' --peers {peers} --hints {peer_clients} --tick {tick_ms}",
            10,
        )
        .unwrap();
        let cluster = [node(1), node(2), node(3)];
        let words = exec.words_for(&cluster[1], &cluster);
        assert_eq!(
            words,
            [
                "/bin/true",
                "--id",
                "2",
                "--listen",
                "127.0.0.1:7002",
                "--client=127.0.0.1:8002",
                "--dir",
                "/runs/r 1/nodes/n2",
                "--peers",
                "1=127.0.0.1:9021,3=127.0.0.1:9023",
                "--hints",
                "1=127.0.0.1:8001,3=127.0.0.1:8003",
                "--tick",
                "10",
            ]
        );
    }

    #[test]
    fn a_value_put_in_is_not_expanded_again() {
        let exec = ExecNode::parse("/bin/true {data_dir} {listen} {client} {peers}", 10).unwrap();
        let mut odd = node(1);
        // a results directory whose name looks like a placeholder
        odd.dir = "/runs/{peers}/{tick_ms}/n1".into();
        let words = exec.words_for(&odd, &[odd.clone()]);
        assert_eq!(words[1], "/runs/{peers}/{tick_ms}/n1");
    }

    #[test]
    fn templates_that_cannot_work_are_refused_by_name() {
        let refused = |t: &str| ExecNode::parse(t, 10).unwrap_err();
        assert!(refused("").contains("empty"));
        assert!(refused("no-such-service {listen} {client} {peers}").contains("not found"));
        assert!(
            refused("true {listen} {client} {peers} {port}").contains("unknown placeholder {port}")
        );
        assert!(refused("true {listen} {peers}").contains("no {client}"));
        assert!(refused("true '{listen} {client} {peers}").contains("--exec"));
    }
}
