//! The precedence of the layers, and one clear error per bad value.

use super::*;
pub(super) use support::*;

mod support {
    use super::*;

    /// Loads `toml` as the configuration file of a fresh root, with `env`.
    pub fn load_toml(
        root: &tempfile::TempDir,
        toml: &str,
        env: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let file = root.path().join("devicetrust.toml");
        std::fs::write(&file, toml).unwrap();
        let flags = Flags {
            root: Some(root.path().to_owned()),
            config: Some(file),
            ..Flags::default()
        };
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&flags, &env, Layer::default())
    }

    /// A root with a configuration file at the default place.
    pub fn root_with_config(toml: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let path = paths::rooted(root.path(), &paths::system_config_file());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, toml).unwrap();
        root
    }
}

mod layers {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_in(
        root: &tempfile::TempDir,
        extra: &[&str],
        e: &[(&str, &str)],
        managed: Layer,
    ) -> Result<Config, ConfigError> {
        let mut flags = Flags {
            root: Some(root.path().to_owned()),
            ..Flags::default()
        };
        let mut extra = extra.iter();
        while let Some(flag) = extra.next() {
            let value = extra.next().map(|v| v.to_string());
            match *flag {
                "--org-url" => flags.org_url = value,
                "--org-token-file" => flags.org_token_file = value.map(PathBuf::from),
                "--config" => flags.config = value.map(PathBuf::from),
                other => panic!("no such flag in these tests: {other}"),
            }
        }
        load(&flags, &env(e), managed)
    }

    #[test]
    fn precedence_is_flag_environment_managed_file() {
        let root = root_with_config("org_url = \"file.okta.com\"");
        let managed = || Layer {
            org_url: Some("managed.okta.com".into()),
            ..Layer::default()
        };
        let url = |c: Config| c.org_url.unwrap().host().to_owned();

        assert_eq!(
            url(load_in(&root, &[], &[], Layer::default()).unwrap()),
            "file.okta.com"
        );
        assert_eq!(
            url(load_in(&root, &[], &[], managed()).unwrap()),
            "managed.okta.com"
        );
        let e = [("DEVICETRUST_ORG_URL", "env.okta.com")];
        assert_eq!(
            url(load_in(&root, &[], &e, managed()).unwrap()),
            "env.okta.com"
        );
        let flag = ["--org-url", "flag.okta.com"];
        assert_eq!(
            url(load_in(&root, &flag, &e, managed()).unwrap()),
            "flag.okta.com"
        );
    }

    #[test]
    fn the_org_token_comes_from_the_highest_layer_that_names_one() {
        let root = root_with_config("org_token_file = \"/from/file\"");
        let c = load_in(&root, &[], &[], Layer::default()).unwrap();
        assert!(
            matches!(c.org_token, Some(SecretSource::File(ref p)) if p == Path::new("/from/file"))
        );

        let e = [("DEVICETRUST_ORG_TOKEN", "s3cret\n")];
        let c = load_in(&root, &[], &e, Layer::default()).unwrap();
        assert_eq!(c.org_token().unwrap().expose(), "s3cret");

        let c = load_in(&root, &["--org-token-file", "-"], &e, Layer::default()).unwrap();
        assert!(matches!(c.org_token, Some(SecretSource::Stdin)));
    }

    #[test]
    fn a_missing_token_names_every_way_to_supply_it() {
        let root = root_with_config("");
        let c = load_in(&root, &[], &[], Layer::default()).unwrap();
        let msg = c.org_token().unwrap_err().to_string();
        for way in [
            "--org-token-file",
            "DEVICETRUST_ORG_TOKEN",
            "org_token_file",
        ] {
            assert!(msg.contains(way), "{msg}");
        }
    }

    #[test]
    fn invalid_values_are_refused_with_their_key() {
        for (toml, needle) in [
            ("org_url = \"http://acme.okta.com\"", "org_url"),
            ("renew_before_days = 400", "renew_before_days"),
            ("store = \"file:\"", "store"),
            ("[network]\nmax_attempts = 0", "max_attempts"),
            ("[network]\ntimeout_secs = 0", "timeout"),
            ("[scep]\nurl = \"ftp://ca\"", "scep.url"),
            ("\n\nbogus = true", "line 3"),
            ("[allowlist]\nadd = [\"teamid:short\"]", "allowlist"),
            ("[allowlist]\nadd = [\"ABCDE12345\"]", "teamid:ABCDE12345"),
        ] {
            let root = root_with_config(toml);
            let err = load_in(&root, &[], &[], Layer::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{toml}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn an_explicit_config_file_must_exist_but_the_default_may_be_absent() {
        let root = tempfile::tempdir().unwrap();
        assert!(load_in(&root, &[], &[], Layer::default())
            .unwrap()
            .file
            .is_none());
        let err = load_in(
            &root,
            &["--config", "/no/such/file.toml"],
            &[],
            Layer::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::FileMissing { .. }));
    }

    #[test]
    fn store_specs_parse() {
        assert_eq!(StoreSpec::parse("keychain").unwrap(), StoreSpec::Keychain);
        assert_eq!(
            StoreSpec::parse("file:/x").unwrap(),
            StoreSpec::File("/x".into())
        );
        assert!(StoreSpec::parse("file:").is_err());
        assert!(StoreSpec::parse("tpm").is_err());
    }
}

mod waits {
    use super::*;

    fn load_in(root: &tempfile::TempDir) -> Result<Config, ConfigError> {
        let flags = Flags {
            root: Some(root.path().to_owned()),
            ..Flags::default()
        };
        load(&flags, &HashMap::new(), Layer::default())
    }

    #[test]
    fn waits_beyond_a_day_are_refused_before_they_can_overflow_a_deadline() {
        // The config_toml fuzz target's oracle: every wait `load` accepts can be added to now.
        for toml in [
            "[network]\nwait_for_network_secs = 9223372036854775807",
            "[network]\ntimeout_secs = 86401",
            "[network]\nretry_base_delay_ms = 18446744073709551",
            "[network]\nrun_deadline_secs = 86401",
            "lock_timeout_secs = 9223372036854775807",
        ] {
            let root = root_with_config(toml);
            let err = load_in(&root).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{toml}: {err}");
            assert!(err.to_string().contains("more than a day"), "{toml}: {err}");
        }
        let root = root_with_config("[network]\nwait_for_network_secs = 86400");
        let c = load_in(&root).unwrap();
        assert_eq!(c.network.wait_for_network, MAX_WAIT);
    }
}

mod allowlist {
    use super::*;
    use crate::integrations::allowlist::{partition_list_string, Partition};

    #[test]
    fn admin_additions_and_removals_shape_the_desired_list() {
        let root = tempfile::tempdir().unwrap();
        let toml = "[allowlist]\nadd = [\"teamid:ABCDE12345\"]\nremove = [\"teamid:AL798K98FX\"]";
        let config = load_toml(&root, toml, &[]).unwrap();
        let desired = config.allowlist.desired().unwrap();
        assert_eq!(desired[0], Partition::AppleTool);
        assert!(desired.contains(&Partition::TeamId("ABCDE12345".into())));
        assert!(!desired.contains(&Partition::TeamId("AL798K98FX".into())));
        assert_eq!(
            partition_list_string(&desired),
            "apple-tool:,apple:,teamid:UBF8T346G9,teamid:EQHXZ8M8AV,teamid:M683GB7CPW,teamid:BQR82RBBHL,teamid:ABCDE12345"
        );
    }
}
