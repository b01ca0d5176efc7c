//! The redirect rules as an `iptables-restore` payload: a pure function of
//! the init flags and of the jump rules already present in the namespace.
//!
//! weft owns two chains in the `nat` table, `WEFT_INBOUND` (hooked from
//! `PREROUTING`) and `WEFT_OUTBOUND` (hooked from `OUTPUT`). The payload
//! declares both, which makes `iptables-restore --noflush` empty them before
//! they are refilled, so a re-run never stacks rules. The built-in chains are
//! not ours to flush; their jump rules are reconciled instead: added when
//! missing, kept when present once, and removed when duplicated or stale.

use std::fmt::Write as _;

use super::ports::PortList;

/// The chain that decides which inbound TCP goes to the proxy.
pub const INBOUND_CHAIN: &str = "WEFT_INBOUND";
/// The chain that decides which outbound TCP goes to the proxy.
pub const OUTBOUND_CHAIN: &str = "WEFT_OUTBOUND";

// The jump rules, written exactly as `iptables-save` prints them (both the
// nft and legacy backends), so that an existing rule compares equal as text.
const INBOUND_JUMP: &str =
    "-A PREROUTING -p tcp -m comment --comment \"weft/inbound\" -j WEFT_INBOUND";
const OUTBOUND_JUMP: &str =
    "-A OUTPUT -p tcp -m comment --comment \"weft/outbound\" -j WEFT_OUTBOUND";

/// What to redirect where: the flags of `weft-proxy init` that shape rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Packets from this UID are never redirected (the proxy's own traffic).
    pub proxy_uid: u32,
    /// Where inbound TCP is redirected.
    pub inbound_port: u16,
    /// Where outbound TCP is redirected.
    pub outbound_port: u16,
    /// Inbound to this port is never redirected.
    pub admin_port: u16,
    /// Inbound to this port is never redirected.
    pub tap_port: u16,
    /// Inbound to these ports bypasses the proxy.
    pub skip_inbound: PortList,
    /// Outbound to these ports bypasses the proxy.
    pub skip_outbound: PortList,
}

impl Default for Redirect {
    fn default() -> Self {
        Self {
            proxy_uid: 2102,
            inbound_port: 4143,
            outbound_port: 4140,
            admin_port: 4191,
            tap_port: 4190,
            skip_inbound: PortList::default(),
            skip_outbound: PortList::default(),
        }
    }
}

/// The rules in the built-in `nat` chains that jump to weft's chains, as
/// `iptables-save` printed them (`-A PREROUTING ... -j WEFT_INBOUND`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExistingJumps(Vec<String>);

impl ExistingJumps {
    /// Picks weft's jump rules out of `iptables-save -t nat` output.
    ///
    /// Only rules in `PREROUTING` and `OUTPUT` whose target is one of our
    /// chains count; anything else in the table belongs to someone else.
    pub fn from_save(save: &str) -> Self {
        let jumps = save
            .lines()
            .map(str::trim_end)
            .filter(|line| {
                let mut words = line.split_whitespace();
                let builtin = matches!(
                    (words.next(), words.next()),
                    (Some("-A"), Some("PREROUTING" | "OUTPUT"))
                );
                builtin && targets_weft(line)
            })
            .map(str::to_owned)
            .collect();
        Self(jumps)
    }

    /// The rules found, in the order `iptables-save` printed them.
    pub fn rules(&self) -> &[String] {
        &self.0
    }
}

fn targets_weft(rule: &str) -> bool {
    let words: Vec<&str> = rule.split_whitespace().collect();
    words.windows(2).any(|w| {
        matches!(w[0], "-j" | "--jump" | "-g" | "--goto")
            && (w[1] == INBOUND_CHAIN || w[1] == OUTBOUND_CHAIN)
    })
}

/// The `iptables-restore --noflush` payload that leaves the namespace with
/// exactly weft's rules for `redirect`, given the jumps already there.
///
/// With `ExistingJumps::default()` this is the payload for a fresh network
/// namespace, which is what `--dry-run` prints.
pub fn payload(redirect: &Redirect, existing: &ExistingJumps) -> String {
    let r = redirect;
    let mut out = String::new();
    let skip = |l: &PortList| {
        if l.is_empty() {
            "none".to_owned()
        } else {
            l.to_string()
        }
    };
    // Writing to a String cannot fail; `let _` keeps clippy from asking us
    // to handle an error that does not exist.
    out.push_str("# weft-proxy init: iptables-restore --noflush payload, nat table, IPv4\n");
    let _ = writeln!(
        out,
        "# inbound: tcp -> :{}, except admin :{}, tap :{}, skip-inbound-ports {}",
        r.inbound_port,
        r.admin_port,
        r.tap_port,
        skip(&r.skip_inbound),
    );
    let _ = writeln!(
        out,
        "# outbound: tcp -> :{}, except uid {}, loopback, skip-outbound-ports {}",
        r.outbound_port,
        r.proxy_uid,
        skip(&r.skip_outbound),
    );
    out.push_str("*nat\n");
    // Declaring a chain under --noflush creates it, or empties it when it
    // exists: this is what makes a re-run replace rather than append.
    let _ = writeln!(out, ":{INBOUND_CHAIN} - [0:0]");
    let _ = writeln!(out, ":{OUTBOUND_CHAIN} - [0:0]");

    let (keep, delete) = reconcile(existing);
    for stale in delete {
        // `-D` with the saved text removes one rule with that exact spec;
        // duplicates appear once per copy, so each copy goes.
        if let Some(spec) = stale.strip_prefix("-A ") {
            let _ = writeln!(out, "-D {spec}");
        }
    }

    inbound_rules(&mut out, r);
    outbound_rules(&mut out, r);

    if !keep.inbound {
        let _ = writeln!(out, "{INBOUND_JUMP}");
    }
    if !keep.outbound {
        let _ = writeln!(out, "{OUTBOUND_JUMP}");
    }
    out.push_str("COMMIT\n");
    out
}

fn inbound_rules(out: &mut String, r: &Redirect) {
    let c = INBOUND_CHAIN;
    // The proxy's own listeners answer probes and the tap API directly;
    // sending them through the inbound proxy would make it proxy itself.
    let _ = writeln!(
        out,
        "-A {c} -p tcp -m tcp --dport {} -m comment --comment \"weft/admin-port\" -j RETURN",
        r.admin_port
    );
    let _ = writeln!(
        out,
        "-A {c} -p tcp -m tcp --dport {} -m comment --comment \"weft/tap-port\" -j RETURN",
        r.tap_port
    );
    for range in r.skip_inbound.ranges() {
        let _ = writeln!(
            out,
            "-A {c} -p tcp -m tcp --dport {} -m comment --comment \"weft/skip-inbound-ports\" -j RETURN",
            range.to_iptables()
        );
    }
    let _ = writeln!(
        out,
        "-A {c} -p tcp -m comment --comment \"weft/redirect-inbound\" -j REDIRECT --to-ports {}",
        r.inbound_port
    );
}

fn outbound_rules(out: &mut String, r: &Redirect) {
    let c = OUTBOUND_CHAIN;
    // Anything leaving through `lo` stays in the pod: 127.0.0.0/8, and also
    // the app calling its own pod IP, which the kernel routes via `lo`.
    // Redirecting the latter would send the app's call to itself out through
    // the outbound proxy and back in, a loop that gains nothing.
    let _ = writeln!(
        out,
        "-A {c} -o lo -m comment --comment \"weft/ignore-loopback\" -j RETURN"
    );
    // The proxy's own connections to upstreams must leave as they are, or
    // each would be caught again by this very rule set.
    let _ = writeln!(
        out,
        "-A {c} -m owner --uid-owner {} -m comment --comment \"weft/ignore-proxy-uid\" -j RETURN",
        r.proxy_uid
    );
    for range in r.skip_outbound.ranges() {
        let _ = writeln!(
            out,
            "-A {c} -p tcp -m tcp --dport {} -m comment --comment \"weft/skip-outbound-ports\" -j RETURN",
            range.to_iptables()
        );
    }
    let _ = writeln!(
        out,
        "-A {c} -p tcp -m comment --comment \"weft/redirect-outbound\" -j REDIRECT --to-ports {}",
        r.outbound_port
    );
}

/// Which of our two jump rules already exist exactly once in our form.
struct Kept {
    inbound: bool,
    outbound: bool,
}

/// Splits the existing jumps into "our rule is there" flags and the rules to
/// delete: every copy after the first of our exact rule, and every jump to
/// our chains in another form (an older weft, a hand-made rule).
fn reconcile(existing: &ExistingJumps) -> (Kept, Vec<&str>) {
    let mut kept = Kept {
        inbound: false,
        outbound: false,
    };
    let mut delete = Vec::new();
    for rule in existing.rules() {
        let slot = if rule == INBOUND_JUMP {
            Some(&mut kept.inbound)
        } else if rule == OUTBOUND_JUMP {
            Some(&mut kept.outbound)
        } else {
            None
        };
        match slot {
            Some(seen) if !*seen => *seen = true,
            _ => delete.push(rule.as_str()),
        }
    }
    (kept, delete)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = r#"# Generated by iptables-nft-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:WEFT_INBOUND - [0:0]
:WEFT_OUTBOUND - [0:0]
-A PREROUTING -p tcp -m comment --comment "weft/inbound" -j WEFT_INBOUND
-A PREROUTING -j KUBE-SOMETHING
-A OUTPUT -p tcp -m comment --comment "weft/outbound" -j WEFT_OUTBOUND
-A OUTPUT -p tcp -m comment --comment "weft/outbound" -j WEFT_OUTBOUND
-A OUTPUT -j WEFT_OUTBOUND
-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 4143
-A POSTROUTING -j WEFT_OUTBOUND
COMMIT
"#;

    #[test]
    fn only_jumps_from_prerouting_and_output_to_our_chains_are_picked() {
        let found = ExistingJumps::from_save(SAVED);
        assert_eq!(
            found.rules(),
            [
                INBOUND_JUMP,
                OUTBOUND_JUMP,
                OUTBOUND_JUMP,
                "-A OUTPUT -j WEFT_OUTBOUND"
            ]
        );
    }

    #[test]
    fn duplicates_and_foreign_forms_are_deleted_and_ours_kept() {
        let p = payload(&Redirect::default(), &ExistingJumps::from_save(SAVED));
        let deletes: Vec<&str> = p.lines().filter(|l| l.starts_with("-D ")).collect();
        assert_eq!(
            deletes,
            [
                "-D OUTPUT -p tcp -m comment --comment \"weft/outbound\" -j WEFT_OUTBOUND",
                "-D OUTPUT -j WEFT_OUTBOUND",
            ]
        );
        assert!(!p.contains("-A PREROUTING"));
        assert!(!p.contains("-A OUTPUT"));
    }

    #[test]
    fn fresh_namespace_gets_both_jumps_once() {
        let p = payload(&Redirect::default(), &ExistingJumps::default());
        assert_eq!(p.matches(INBOUND_JUMP).count(), 1);
        assert_eq!(p.matches(OUTBOUND_JUMP).count(), 1);
        assert!(p.ends_with("COMMIT\n"));
    }
}
