//! Resource normalization, as YARN's scheduler does it: memory rounded up to a multiple of the
//! minimum allocation, vcores raised to the minimum, anything above the maximum refused with the
//! value and the limit, zero or negative refused naming the field.

use spindle_containers::Resource;

use super::CoreConfig;
use super::error::CoreError;

/// Checks and normalizes a request of `memory_mb` and `vcores`. `field` names it for errors
/// about its shape (`asks[0].capability`), `what` for errors about the limits
/// (`container request`).
pub fn normalize(
    config: &CoreConfig,
    field: &str,
    what: &str,
    memory_mb: i64,
    vcores: i32,
) -> Result<Resource, CoreError> {
    if memory_mb < 1 {
        return Err(CoreError::MemoryNotPositive {
            field: field.to_string(),
            value: memory_mb,
        });
    }
    if vcores < 1 {
        return Err(CoreError::VcoresNotPositive {
            field: field.to_string(),
            value: vcores,
        });
    }
    let max = config.maximum_allocation;
    if memory_mb as u64 > max.memory_mb {
        return Err(CoreError::MemoryAboveMaximum {
            what: what.to_string(),
            value: memory_mb,
            maximum: max.memory_mb,
        });
    }
    if vcores as u32 > max.vcores {
        return Err(CoreError::VcoresAboveMaximum {
            what: what.to_string(),
            value: vcores,
            maximum: max.vcores,
        });
    }
    let step = config.minimum_allocation.memory_mb.max(1);
    // Rounding up may pass the maximum when it is not a multiple of the minimum; the maximum wins.
    let memory_mb = (memory_mb as u64).div_ceil(step).saturating_mul(step);
    Ok(Resource::new(
        memory_mb.min(max.memory_mb),
        (vcores as u32).max(config.minimum_allocation.vcores),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testkit::config;

    #[test]
    fn rounds_memory_up_to_the_minimum_and_raises_vcores() {
        let c = config();
        assert_eq!(normalize(&c, "f", "w", 1, 1), Ok(Resource::new(1024, 1)));
        assert_eq!(normalize(&c, "f", "w", 1025, 3), Ok(Resource::new(2048, 3)));
        assert_eq!(
            normalize(&c, "f", "w", 8192, 32),
            Ok(Resource::new(8192, 32))
        );
    }

    #[test]
    fn refuses_above_the_maximum_naming_value_and_limit() {
        let err = normalize(
            &config(),
            "asks[0].capability",
            "container request",
            100_000,
            1,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "container request memory_mb=100000 exceeds the maximum allocation of 8192 MB"
        );
        let err = normalize(&config(), "f", "container request", 1024, 33).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container request vcores=33 exceeds the maximum allocation of 32 vcores"
        );
    }

    #[test]
    fn refuses_zero_and_negative_naming_the_field() {
        let err = normalize(&config(), "asks[2].capability", "w", 0, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "asks[2].capability.memory_mb=0 must be at least 1"
        );
        let err = normalize(&config(), "am_resource", "w", 512, -1).unwrap_err();
        assert_eq!(err.to_string(), "am_resource.vcores=-1 must be at least 1");
    }
}
