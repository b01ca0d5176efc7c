//! `weft-proxy init`: installs the redirect that puts the proxy in the path
//! of the pod's TCP, in the pod's network namespace, before the app starts.
//!
//! The flags are the contract the injector writes (docs/architecture.md,
//! "Init step weft-init"). The rules are a pure function of them
//! ([`rules::payload`]), applied in one `iptables-restore --noflush` call
//! ([`apply`]). IPv4 only: the proxy listens on IPv4 addresses, so IPv6 is
//! left alone rather than redirected to a port nothing listens on.

pub mod apply;
pub mod error;
pub mod ports;
pub mod rules;

use std::io::Write;

pub use apply::Mode;
pub use error::InitError;
pub use ports::{PortList, PortListError, PortRange};
pub use rules::{ExistingJumps, Redirect};

// The defaults are the pod contract's (the injector writes the same).
use weft_core::config;

/// The arguments of `weft-proxy init`, exactly as docs/architecture.md lists them.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Packets from this UID are never redirected (the proxy's own traffic).
    #[arg(long, default_value_t = u32::from(config::PROXY_UID))]
    pub proxy_uid: u32,

    /// Where inbound TCP is redirected.
    #[arg(long, default_value_t = config::INBOUND_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub inbound_port: u16,

    /// Where outbound TCP is redirected.
    #[arg(long, default_value_t = config::OUTBOUND_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub outbound_port: u16,

    /// Inbound to this port is never redirected (the proxy's admin server).
    #[arg(long, default_value_t = config::ADMIN_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub admin_port: u16,

    /// Inbound to this port is never redirected (the proxy's tap server).
    #[arg(long, default_value_t = config::TAP_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub tap_port: u16,

    /// Inbound to these ports bypasses the proxy: ports and ranges, `25,8000-8100`.
    #[arg(long, value_name = "LIST")]
    pub skip_inbound_ports: Option<PortList>,

    /// Outbound to these ports bypasses the proxy: ports and ranges, `25,8000-8100`.
    #[arg(long, value_name = "LIST")]
    pub skip_outbound_ports: Option<PortList>,

    /// iptables backend.
    #[arg(long, value_enum, default_value_t = Mode::Nft)]
    pub mode: Mode,

    /// Print the iptables-restore payload (for a fresh namespace) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Default for InitArgs {
    fn default() -> Self {
        let r = Redirect::default();
        Self {
            proxy_uid: r.proxy_uid,
            inbound_port: r.inbound_port,
            outbound_port: r.outbound_port,
            admin_port: r.admin_port,
            tap_port: r.tap_port,
            skip_inbound_ports: None,
            skip_outbound_ports: None,
            mode: Mode::default(),
            dry_run: false,
        }
    }
}

impl InitArgs {
    /// The redirect these flags ask for, once checked for contradictions.
    pub fn redirect(&self) -> Result<Redirect, InitError> {
        let ports = [
            ("--inbound-port", self.inbound_port),
            ("--outbound-port", self.outbound_port),
            ("--admin-port", self.admin_port),
            ("--tap-port", self.tap_port),
        ];
        if let Some((flag, _)) = ports.iter().find(|(_, p)| *p == 0) {
            return Err(InitError::InvalidArgs(format!(
                "{flag}=0: a port is a number from 1 to 65535"
            )));
        }
        // One port for both directions would leave the proxy unable to
        // tell an app's outbound call from a peer's inbound one.
        if self.inbound_port == self.outbound_port {
            return Err(InitError::InvalidArgs(format!(
                "--inbound-port and --outbound-port are both {}: they must differ",
                self.inbound_port
            )));
        }
        Ok(Redirect {
            proxy_uid: self.proxy_uid,
            inbound_port: self.inbound_port,
            outbound_port: self.outbound_port,
            admin_port: self.admin_port,
            tap_port: self.tap_port,
            skip_inbound: self.skip_inbound_ports.clone().unwrap_or_default(),
            skip_outbound: self.skip_outbound_ports.clone().unwrap_or_default(),
        })
    }
}

/// Runs `weft-proxy init`: installs (or, with `--dry-run`, prints) the
/// rules, writing what it did to `out` for the init container's log.
pub fn run(args: &InitArgs, out: &mut dyn Write) -> Result<(), InitError> {
    let redirect = args.redirect()?;
    if args.dry_run {
        out.write_all(rules::payload(&redirect, &ExistingJumps::default()).as_bytes())?;
        return Ok(());
    }
    let saved = apply::read_nat(args.mode)?;
    let payload = rules::payload(&redirect, &ExistingJumps::from_save(&saved));
    apply::restore(args.mode, &payload)?;
    writeln!(
        out,
        "weft-proxy init: redirect installed with {} --noflush:",
        args.mode.restore_tool()
    )?;
    out.write_all(payload.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        assert_eq!(
            InitArgs::default().redirect().ok(),
            Some(Redirect::default())
        );
    }

    #[test]
    fn contradictory_ports_are_refused() {
        let same = InitArgs {
            outbound_port: 4143,
            ..InitArgs::default()
        };
        let err = same
            .redirect()
            .err()
            .map(|e| (e.exit_code(), e.to_string()));
        assert_eq!(
            err,
            Some((
                2,
                "invalid arguments: --inbound-port and --outbound-port are both 4143: they must differ"
                    .to_owned()
            ))
        );
        let zero = InitArgs {
            tap_port: 0,
            ..InitArgs::default()
        };
        assert_eq!(zero.redirect().err().map(|e| e.exit_code()), Some(2));
    }

    #[test]
    fn dry_run_prints_the_fresh_payload() -> Result<(), InitError> {
        let args = InitArgs {
            dry_run: true,
            ..InitArgs::default()
        };
        let mut out = Vec::new();
        run(&args, &mut out)?;
        let expected = rules::payload(&Redirect::default(), &ExistingJumps::default());
        assert_eq!(String::from_utf8_lossy(&out), expected);
        Ok(())
    }
}
