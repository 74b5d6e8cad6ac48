//! The command-line contract of `../shared/spec/cli.md`: commands, options and their help.
//!
//! Flags are documented here once; scripts, Jamf policies and the docs depend on these names.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const ABOUT: &str =
    "Puts an Okta Device Trust client certificate on this Mac for the console user \
and keeps it healthy: enrolls, renews by 30 days before expiry, reports health to Jamf, uninstalls.";

const AFTER_HELP: &str = "\
Exit codes: 0 success or nothing to do, 1 the operation failed, 2 usage or configuration error,
75 deferred, try again later (no console user, network not ready, rate limited).

Configuration precedence: flag > environment > managed preferences > config file >
the enrollment record (what a successful enrollment saved) > default. Every option has its
environment variable (DEVICETRUST_CONFIG, _ROOT, _STORE, _USER, _VERBOSE, _ORG_URL,
_ORG_TOKEN_FILE, _CA_FILE, _DEVICE_UUID, _DEVICE_NAME, _SCEP_URL, _SCEP_CHALLENGE_FILE,
_SCEP_CA_FINGERPRINT).
The org secret is never taken from a flag value: use --org-token-file FILE (- reads stdin),
the DEVICETRUST_ORG_TOKEN environment variable, or org_token_file in the configuration file.

Examples (a Jamf policy runs these as root):
  devicetrust enroll --org-url https://acme.okta.com --org-token-file - < token
  devicetrust status
  devicetrust ea                      # Extension Attribute: <result>Healthy</result>
  devicetrust plan                    # what enroll would do here, changing nothing
  devicetrust renew --force
  devicetrust selftest                # paste its lines into a ticket
  devicetrust teamid /Applications/Slack.app   # teamid:BQR82RBBHL, for the app allowlist
  devicetrust uninstall --reenroll    # after revoking the user's certificate in Okta";

#[derive(Debug, Parser)]
#[command(name = "devicetrust", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Full setup for the console user: identity store, enrollment, renewal settings.
    /// With a valid certificate present it asks for no new one. It does what `plan` lists.
    Enroll {
        /// One JSON document on stdout, nothing else: the actions taken, link by link, in
        /// `plan`'s words.
        #[arg(long)]
        json: bool,
    },
    /// Renew the certificate when this device's renewal has started (by 30 days before expiry
    /// at the latest; each device starts up to renew_spread_days earlier), or with --force.
    /// Before that it exits 0 without any network request.
    Renew {
        /// Renew now, whatever the days left.
        #[arg(long)]
        force: bool,
        /// Renew when fewer than N days of validity remain (no fleet spread).
        #[arg(long, value_name = "N")]
        renew_before_days: Option<u32>,
    },
    /// Show the health status and the certificate on this device.
    Status {
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
        /// Also check that the Okta org answers (waits up to network.wait_for_network_secs
        /// for the network or a VPN/ZTNA tunnel first).
        #[arg(long)]
        check_network: bool,
    },
    /// Jamf Extension Attribute: prints exactly one <result>...</result> line; always exits 0.
    Ea {
        /// Print the certificate's expiry as a Jamf "Date" (YYYY-MM-DD HH:MM:SS, UTC) instead.
        #[arg(long, conflicts_with = "plan")]
        expiry: bool,
        /// Print `plan`'s verdict instead: Ready, Ready: 1 certificate, or Blocked: <reason>.
        #[arg(long)]
        plan: bool,
        /// Report "Okta Unreachable" when the org does not answer (see `status --check-network`).
        #[arg(long)]
        check_network: bool,
    },
    /// What `enroll` would do here, changing nothing: each link of the chain with what it finds
    /// and the action (adopt, create, replace, set aside, remove, nothing), whether a
    /// certificate would be requested and why, then `Ready` or `Blocked: <first reason>`.
    /// Exit 0 Ready, 1 Blocked, 75 deferred.
    Plan {
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
        /// Also check that the org answers, and ask Okta for the certAuthDomain a takeover
        /// would write (the only requests a plan sends).
        #[arg(long)]
        check_network: bool,
    },
    /// Re-apply everything but the certificate (browser policy, app access, renewal job) and
    /// renew if due; prints each change. The "Fix-It" action.
    Repair,
    /// Remove everything the agent created (revoke-and-re-enroll flow).
    Uninstall {
        /// Enroll afresh after removing everything.
        #[arg(long)]
        reenroll: bool,
    },
    /// Zero-setup walk-through: a local Okta-compatible service, enroll, status, renew, uninstall.
    Demo,
    /// Print the TeamIdentifier of an app's code signature as the allowlist takes it
    /// (`teamid:XXXXXXXXXX`); -v adds the signing identifier. Reads the signature itself:
    /// works on any OS, without `codesign`.
    Teamid {
        /// An .app bundle, or a Mach-O executable (thin or universal).
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Prove on this machine what the agent relies on, one PASS/FAIL/SKIP line per check with
    /// its evidence: on a Mac in a throwaway keychain (key generated non-extractable, export
    /// refused, access and partition list, identity, signing without dialogs, identity
    /// preferences), then the real state read only; on Linux the identity, the NSS database,
    /// the browser policy files and the renewal timer; last, `plan` worked out twice and
    /// compared. Exit 1 if any check fails.
    Selftest {
        /// One JSON document on stdout, for a ticket.
        #[arg(long)]
        json: bool,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML) [env: DEVICETRUST_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Prefix for every file path the agent reads or writes by default (tests, the demo)
    /// [env: DEVICETRUST_ROOT]. Paths given explicitly on the command line are used as given.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Identity store: `keychain` (macOS default) or `file:DIR` [env: DEVICETRUST_STORE].
    #[arg(long, global = true, value_name = "SPEC")]
    pub store: Option<String>,
    /// Act for this user instead of the console user [env: DEVICETRUST_USER].
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Add DEBUG: lines [env: DEVICETRUST_VERBOSE=1].
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// The Okta org, e.g. https://acme.okta.com [env: DEVICETRUST_ORG_URL].
    #[arg(long, global = true, value_name = "URL", help_heading = "Enrollment")]
    pub org_url: Option<String>,
    /// File holding the org secret key; `-` reads it from stdin [env: DEVICETRUST_ORG_TOKEN_FILE;
    /// DEVICETRUST_ORG_TOKEN holds the secret itself].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Enrollment")]
    pub org_token_file: Option<PathBuf>,
    /// Extra trust anchors (PEM) for the Okta / SCEP HTTPS endpoints, added to the system's
    /// [env: DEVICETRUST_CA_FILE].
    #[arg(long, global = true, value_name = "PEM", help_heading = "Enrollment")]
    pub ca_file: Option<PathBuf>,
    /// Override the hardware UUID sent to Okta [env: DEVICETRUST_DEVICE_UUID].
    #[arg(long, global = true, value_name = "UUID", help_heading = "Enrollment")]
    pub device_uuid: Option<String>,
    /// Override the computer name sent to Okta [env: DEVICETRUST_DEVICE_NAME].
    #[arg(long, global = true, value_name = "NAME", help_heading = "Enrollment")]
    pub device_name: Option<String>,
    /// Enroll over SCEP at this URL instead of the Okta API [env: DEVICETRUST_SCEP_URL].
    #[arg(long, global = true, value_name = "URL", help_heading = "Enrollment")]
    pub scep_url: Option<String>,
    /// File holding the SCEP static challenge [env: DEVICETRUST_SCEP_CHALLENGE_FILE;
    /// DEVICETRUST_SCEP_CHALLENGE holds the challenge itself].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Enrollment")]
    pub scep_challenge_file: Option<PathBuf>,
    /// SHA-256 fingerprint (hex) of the expected SCEP CA certificate
    /// [env: DEVICETRUST_SCEP_CA_FINGERPRINT].
    #[arg(long, global = true, value_name = "HEX", help_heading = "Enrollment")]
    pub scep_ca_fingerprint: Option<String>,
}

impl GlobalArgs {
    /// The options as the configuration loader takes them.
    pub fn flags(&self) -> crate::config::Flags {
        crate::config::Flags {
            config: self.config.clone(),
            root: self.root.clone(),
            store: self.store.clone(),
            user: self.user.clone(),
            org_url: self.org_url.clone(),
            org_token_file: self.org_token_file.clone(),
            ca_file: self.ca_file.clone(),
            device_uuid: self.device_uuid.clone(),
            device_name: self.device_name.clone(),
            scep_url: self.scep_url.clone(),
            scep_challenge_file: self.scep_challenge_file.clone(),
            scep_ca_fingerprint: self.scep_ca_fingerprint.clone(),
        }
    }
}

impl Command {
    /// Whether the command was asked for one JSON document (`--json`): then even its failure
    /// is one, never an `ERROR:` line.
    pub fn json(&self) -> bool {
        matches!(
            self,
            Command::Status { json: true, .. }
                | Command::Selftest { json: true }
                | Command::Plan { json: true, .. }
                | Command::Enroll { json: true }
        )
    }
}
