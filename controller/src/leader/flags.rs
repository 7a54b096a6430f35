//! The leader-election flags (ours, docs/design.md): whether replicas elect a leader, and
//! the Lease they elect it with.

use std::time::Duration;

use clap::{ArgAction, Args};

use super::election::ElectionConfig;
use crate::flags::{Refused, duration, parse_bool};

/// How replicas elect the one that reconciles and renews keys.
#[derive(Clone, Debug, Args)]
pub struct LeaderArgs {
    /// Elect a leader through a coordination.k8s.io Lease so that several replicas can run;
    /// only the leader unseals and renews keys.
    #[arg(long = "leader-election", default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub enabled: bool,

    /// Name of the leader-election Lease in the controller namespace.
    #[arg(
        long = "leader-election-lease-name",
        default_value = "sealed-secrets-controller"
    )]
    pub lease_name: String,

    /// How long a leader holds the Lease without renewing it before another replica takes over.
    #[arg(long = "leader-election-lease-duration", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
}

impl LeaderArgs {
    /// The flags that only matter together: a zero Lease duration (which would make the
    /// leader give up its Lease at once) is refused only when there is an election.
    pub fn check(&self) -> Result<(), (&'static str, Refused)> {
        if self.enabled && self.lease_duration.is_zero() {
            return Err((
                "--leader-election-lease-duration",
                Refused::because("must be more than 0"),
            ));
        }
        Ok(())
    }

    /// The election of `identity` in `namespace`; `None` with `--leader-election=false`
    /// (this replica always leads). The renew deadline is 10 s (at most the lease duration),
    /// the retry period 2 s, client-go's defaults.
    pub fn election(&self, namespace: &str, identity: &str) -> Option<ElectionConfig> {
        self.enabled.then(|| ElectionConfig {
            namespace: namespace.to_owned(),
            lease_name: self.lease_name.clone(),
            identity: identity.to_owned(),
            lease_duration: self.lease_duration,
            renew_deadline: Duration::from_secs(10).min(self.lease_duration),
            retry_period: Duration::from_secs(2),
            labels: Default::default(),
            reports_leader: true,
        })
    }
}
