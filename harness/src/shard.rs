//! Which slice of a campaign this process runs: `--shard i/n`, or the index variables of the
//! batch engine that started it, so that one job definition fans a campaign out over many
//! machines (docs/campaigns.md shows a CI matrix and a Kubernetes Indexed Job).

/// Shard `i` of `n`, 1-based.
pub type Shard = (u64, u64);

/// A shard the environment named, and the variables that named it.
pub type Found = (Shard, String);

/// Parses `i/n` (1-based).
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let bad = || format!("--shard takes i/n with 1 <= i <= n, not {s:?}");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u64, u64) =
        (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Whether run `index` belongs to shard `i` of `n`.
pub fn in_shard(index: u64, (i, n): Shard) -> bool {
    index % n == i - 1
}

/// The index variables of common batch engines: (index variable, count variable, whether the
/// index counts from 0).
const ENGINES: [(&str, &str, bool); 4] = [
    // Kubernetes Indexed Jobs set the index; the job's spec sets the count (its completions).
    ("JOB_COMPLETION_INDEX", "GAUNTLET_SHARD_COUNT", true),
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", false),
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", true),
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", true),
];

/// The shard the environment names (`var` reads a variable), and which variables named it:
/// `GAUNTLET_SHARD=i/n` first, then the engines' index and count variables. None when no
/// variable is set; an error naming the variable when one is set wrongly.
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Found>, String> {
    if let Some(s) = var("GAUNTLET_SHARD") {
        let shard = parse_shard(&s).map_err(|e| format!("GAUNTLET_SHARD: {e}"))?;
        return Ok(Some((shard, "GAUNTLET_SHARD".into())));
    }
    for (index_var, count_var, from_zero) in ENGINES {
        let Some(index) = var(index_var) else { continue };
        let index: u64 = index
            .trim()
            .parse()
            .map_err(|_| format!("{index_var}={index:?}: expected a shard number"))?;
        let Some(count) = var(count_var) else {
            return Err(format!(
                "{index_var} is set but {count_var} is not: set it to the number of shards, or \
                 pass --shard i/n"
            ));
        };
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| format!("{count_var}={count:?}: expected the number of shards"))?;
        let i = if from_zero { index + 1 } else { index };
        let shard = parse_shard(&format!("{i}/{count}")).map_err(|_| {
            format!("{index_var}={index} with {count_var}={count}: not a shard of {count}")
        })?;
        return Ok(Some((shard, format!("{index_var}/{count_var}"))));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn shards_come_from_the_batch_engines_variables() {
        assert_eq!(from_env(env(&[])), Ok(None));
        let shard = |vars: &[(&str, &str)]| from_env(env(vars)).unwrap().unwrap().0;
        assert_eq!(shard(&[("GAUNTLET_SHARD", "2/5")]), (2, 5));
        // Kubernetes counts from 0.
        assert_eq!(shard(&[("JOB_COMPLETION_INDEX", "0"), ("GAUNTLET_SHARD_COUNT", "4")]), (1, 4));
        // GitLab counts from 1.
        assert_eq!(shard(&[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "3")]), (3, 3));
        assert_eq!(shard(&[("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "2")]), (2, 2));
        assert_eq!(
            shard(&[("BUILDKITE_PARALLEL_JOB", "4"), ("BUILDKITE_PARALLEL_JOB_COUNT", "5")]),
            (5, 5)
        );
        // The project's own variable wins over an engine's.
        assert_eq!(
            shard(&[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "2"), ("GAUNTLET_SHARD", "1/1")]),
            (1, 1)
        );
    }

    #[test]
    fn wrong_variables_are_named() {
        let error = |vars: &[(&str, &str)]| from_env(env(vars)).unwrap_err();
        assert!(error(&[("JOB_COMPLETION_INDEX", "1")]).contains("GAUNTLET_SHARD_COUNT is not"));
        assert!(error(&[("CI_NODE_INDEX", "x"), ("CI_NODE_TOTAL", "2")])
            .contains("CI_NODE_INDEX=\"x\""));
        assert!(
            error(&[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "2")]).contains("not a shard of 2")
        );
        assert!(error(&[("GAUNTLET_SHARD", "0/2")]).contains("GAUNTLET_SHARD"));
    }
}
