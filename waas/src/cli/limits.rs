//! The flags and `WAAS_*` variables of the limits, made from [`Limits::SPECS`] rather than
//! written out: a limit added to `Limits` gets its flag and variable with nothing to add here.

use clap::builder::ValueParser;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use waas_gateway::config::LimitType;
use waas_gateway::Limits;

/// The limits given on the command line or in the environment, as (key, value) pairs.
pub struct LimitArgs {
    given: Vec<(&'static str, String)>,
}

impl LimitArgs {
    /// Overlays the given limits on `limits` (read from the file, or defaults).
    pub fn apply(&self, limits: &mut Limits) -> anyhow::Result<()> {
        for (key, value) in &self.given {
            let spec = spec(key);
            spec.set(limits, value)
                .map_err(|e| anyhow::anyhow!("--{} {value:?}: {e}", spec.flag()))?;
        }
        Ok(())
    }
}

fn spec(key: &str) -> &'static waas_gateway::config::LimitSpec {
    Limits::SPECS
        .iter()
        .find(|s| s.key == key)
        .expect("a key of Limits::SPECS")
}

/// Each value is parsed as its field's type, so a value out of range is refused by clap, as it
/// was when the flags were fields of their own.
fn parser(ty: LimitType) -> ValueParser {
    match ty {
        LimitType::Usize => value_parser!(usize).into(),
        LimitType::U32 => value_parser!(u32).into(),
        LimitType::U64 => value_parser!(u64).into(),
    }
}

fn given(matches: &ArgMatches, key: &'static str, ty: LimitType) -> Option<String> {
    match ty {
        LimitType::Usize => matches.get_one::<usize>(key).map(ToString::to_string),
        LimitType::U32 => matches.get_one::<u32>(key).map(ToString::to_string),
        LimitType::U64 => matches.get_one::<u64>(key).map(ToString::to_string),
    }
}

impl FromArgMatches for LimitArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = Limits::SPECS
            .iter()
            .filter_map(|s| given(matches, s.key, s.ty).map(|v| (s.key, v)))
            .collect();
        Ok(LimitArgs { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for LimitArgs {
    fn augment_args(mut cmd: Command) -> Command {
        for s in Limits::SPECS {
            cmd = cmd.arg(
                Arg::new(s.key)
                    .long(s.flag())
                    .env(s.env())
                    .value_name(s.key.to_ascii_uppercase())
                    .value_parser(parser(s.ty))
                    .action(ArgAction::Set)
                    .required(false),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Limits, clap::Error> {
        let cmd = LimitArgs::augment_args(Command::new("waas").no_binary_name(true));
        let given = LimitArgs::from_arg_matches(&cmd.try_get_matches_from(args)?)?;
        let mut limits = Limits::default();
        given
            .apply(&mut limits)
            .expect("values clap accepted apply");
        Ok(limits)
    }

    /// Each flag sets its own limit and no other.
    #[test]
    fn every_flag_sets_its_limit() {
        for s in Limits::SPECS {
            let value = (s.default_value().parse::<u64>().expect("a number") + 1).to_string();
            let limits = parse(&[&format!("--{}", s.flag()), &value]).expect("accepted");
            assert_eq!(s.get(&limits), value, "--{}", s.flag());
            for other in Limits::SPECS.iter().filter(|o| o.key != s.key) {
                assert_eq!(other.get(&limits), other.default_value(), "--{}", s.flag());
            }
        }
    }

    /// A value outside the field's type is refused as a usage error, naming the flag.
    #[test]
    fn out_of_range_values_are_refused() {
        let e = parse(&["--publish-rate", "4294967296"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(e.to_string().contains("--publish-rate"), "{e}");
        let e = parse(&["--max-frame-bytes=-1"]).unwrap_err();
        assert!(e.to_string().contains("--max-frame-bytes"), "{e}");
    }

    #[test]
    fn flags_and_variables_keep_their_names() {
        let spec = super::spec("max_inflight_requests_per_connection");
        assert_eq!(spec.flag(), "max-inflight-requests-per-connection");
        assert_eq!(spec.env(), "WAAS_MAX_INFLIGHT_REQUESTS_PER_CONNECTION");
    }
}
