//! The request lifecycle and the state of each subject × instance grant.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(value: &str) -> Option<Self> {
                match value {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Where a request stands.
    /// `pending_approval → approved → granting → active → revoking → expired`, with the side exits
    /// `rejected`, `canceled` (before grant), `revoked` (ended early) and `failed`.
    RequestStatus {
        /// Waiting for an approver of the environment.
        PendingApproval => "pending_approval",
        /// Approved; the worker will create the accounts.
        Approved => "approved",
        /// Accounts are being created on the instances.
        Granting => "granting",
        /// Access works until `expires_at`.
        Active => "active",
        /// Accounts are being removed.
        Revoking => "revoking",
        /// Access ended at its planned time and the accounts are gone.
        Expired => "expired",
        /// Access was ended early and the accounts are gone.
        Revoked => "revoked",
        /// An approver said no.
        Rejected => "rejected",
        /// The requester withdrew it before access was granted.
        Canceled => "canceled",
        /// Access could not be granted everywhere; whatever was created has been removed.
        Failed => "failed",
    }
);

impl RequestStatus {
    /// No further transition can happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Expired | Self::Revoked | Self::Rejected | Self::Canceled | Self::Failed
        )
    }
}

str_enum!(
    /// The state of one subject's account on one instance.
    GrantStatus {
        /// Nothing sent yet.
        Pending => "pending",
        /// The create command is being sent (it may have reached the instance).
        Sending => "sending",
        /// The create command was sent; waiting for its result.
        Sent => "sent",
        /// The account exists and the key works.
        Active => "active",
        /// The create command failed on this instance.
        Failed => "failed",
        /// No create command was sent, and none could have arrived: the instance left the environment,
        /// or SSM refused it the first time. Nothing to remove.
        Refused => "refused",
        /// The remove command was sent; waiting for its result.
        Removing => "removing",
        /// The account (or this grant's key) is gone from the instance.
        Removed => "removed",
        /// The remove command failed; it is retried and operators are alerted.
        RemoveFailed => "remove_failed",
    }
);

str_enum!(
    /// Operating system family of an instance.
    Platform {
        Linux => "linux",
        Windows => "windows",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for s in RequestStatus::ALL {
            assert_eq!(RequestStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in GrantStatus::ALL {
            assert_eq!(GrantStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(RequestStatus::parse("bogus"), None);
    }
}
