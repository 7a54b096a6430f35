//! The sharding flags (ours, docs/design.md "Shards"): whether replicas share the
//! SealedSecrets, and the ring they share them in.

use clap::{ArgAction, Args};

use crate::flags::{Refused, parse_bool};
use crate::leader::LeaderArgs;
use crate::shard::Member;

/// How replicas share the SealedSecrets.
#[derive(Clone, Debug, Args)]
pub struct ShardArgs {
    /// Share the SealedSecrets among all replicas (active-active): each replica holds its own
    /// Lease and reconciles the objects the leader assigns to it by consistent hashing. Needs
    /// leader election: the leader assigns objects and manages keys.
    #[arg(id = "sharding", long = "sharding", default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub enabled: bool,

    /// Name of the ring (the value of the members' Lease label and the suffix of the shard
    /// and drain label keys); empty: the leader-election Lease name.
    #[arg(id = "sharding_ring", long = "sharding-ring", default_value = "")]
    pub ring: String,
}

impl ShardArgs {
    /// The flags that only matter together: sharding needs an elected leader, and the ring
    /// name becomes the name part of a label key (at most 63 characters, DNS-1123).
    pub fn check(&self, leader: &LeaderArgs) -> Result<(), (&'static str, Refused)> {
        if !self.enabled {
            return Ok(());
        }
        if !leader.enabled {
            return Err((
                "--sharding",
                Refused::because("needs --leader-election (the leader assigns the objects)"),
            ));
        }
        let ring = self.ring(leader);
        let valid = !ring.is_empty()
            && ring.len() <= 63
            && ring
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !ring.starts_with(['-', '.'])
            && !ring.ends_with(['-', '.']);
        if !valid {
            return Err((
                "--sharding-ring",
                Refused::because(
                    "must be at most 63 lowercase letters, digits, '-' or '.' (it is part of a label key)",
                ),
            ));
        }
        Ok(())
    }

    /// The ring's name.
    pub fn ring(&self, leader: &LeaderArgs) -> String {
        if self.ring.is_empty() {
            leader.lease_name.clone()
        } else {
            self.ring.clone()
        }
    }

    /// This process as a member of the ring, `None` without `--sharding`.
    pub fn member(&self, leader: &LeaderArgs, identity: &str) -> Option<Member> {
        self.enabled.then(|| Member {
            ring: self.ring(leader),
            identity: identity.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::try_parse_from(std::iter::once("controller").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sharding_is_off_by_default() {
        let c = parse(&[]).unwrap();
        assert!(!c.shard.enabled);
        assert_eq!(c.shard.member(&c.leader, "me"), None);
    }

    #[test]
    fn the_ring_defaults_to_the_leader_lease_name() {
        let c = parse(&["--sharding"]).unwrap();
        let m = c.shard.member(&c.leader, "me").unwrap();
        assert_eq!(m.ring, "sealed-secrets-controller");
        let c = parse(&[
            "--sharding",
            "--leader-election-lease-name=x",
            "--sharding-ring=ring-2",
        ])
        .unwrap();
        assert_eq!(c.shard.ring(&c.leader), "ring-2");
    }

    #[test]
    fn sharding_needs_an_election_and_a_label_safe_ring() {
        assert_eq!(
            parse(&["--sharding", "--leader-election=false"]).unwrap_err(),
            "invalid --sharding: needs --leader-election (the leader assigns the objects)"
        );
        let e = parse(&["--sharding", "--sharding-ring=Not_Valid"]).unwrap_err();
        assert!(e.starts_with("invalid --sharding-ring:"), "{e}");
        let long = format!("--sharding-ring={}", "a".repeat(64));
        assert!(parse(&["--sharding", &long]).is_err());
        // Without --sharding the ring is not checked.
        assert!(parse(&["--sharding-ring=Not_Valid"]).is_ok());
    }
}
