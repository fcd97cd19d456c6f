//! `Resource`: memory in MB and virtual cores, the unit in which the cluster's capacity is
//! counted, asked for and handed out.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use spindle_protocol as proto;

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Resource {
    pub memory_mb: u64,
    pub vcores: u32,
}

/// A resource from the wire that cannot be one (zero or negative, or absent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("{field} is missing: a resource needs memory_mb and vcores")]
    Missing { field: &'static str },
    #[error("{field}.memory_mb={value} must be at least 1")]
    Memory { field: &'static str, value: i64 },
    #[error("{field}.vcores={value} must be at least 1")]
    Vcores { field: &'static str, value: i32 },
}

impl Resource {
    pub const ZERO: Resource = Resource {
        memory_mb: 0,
        vcores: 0,
    };

    pub const fn new(memory_mb: u64, vcores: u32) -> Self {
        Resource { memory_mb, vcores }
    }

    /// Whether `self` fits into `available` on every dimension.
    pub fn fits_in(&self, available: &Resource) -> bool {
        self.memory_mb <= available.memory_mb && self.vcores <= available.vcores
    }

    /// `self - other`, floored at zero on each dimension.
    pub fn saturating_sub(&self, other: &Resource) -> Resource {
        Resource {
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            vcores: self.vcores.saturating_sub(other.vcores),
        }
    }

    /// Checks a resource that came over the wire: both dimensions present and positive.
    /// `field` names it in the error (e.g. `am_resource`).
    pub fn from_proto(
        field: &'static str,
        resource: Option<&proto::Resource>,
    ) -> Result<Resource, ResourceError> {
        let r = resource.ok_or(ResourceError::Missing { field })?;
        if r.memory_mb < 1 {
            return Err(ResourceError::Memory {
                field,
                value: r.memory_mb,
            });
        }
        if r.vcores < 1 {
            return Err(ResourceError::Vcores {
                field,
                value: r.vcores,
            });
        }
        Ok(Resource::new(r.memory_mb as u64, r.vcores as u32))
    }

    pub fn to_proto(self) -> proto::Resource {
        proto::Resource {
            memory_mb: i64::try_from(self.memory_mb).unwrap_or(i64::MAX),
            vcores: i32::try_from(self.vcores).unwrap_or(i32::MAX),
        }
    }
}

impl From<Resource> for proto::Resource {
    fn from(r: Resource) -> Self {
        r.to_proto()
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<memory:{} MB, vCores:{}>", self.memory_mb, self.vcores)
    }
}

impl Add for Resource {
    type Output = Resource;
    fn add(self, o: Resource) -> Resource {
        Resource::new(self.memory_mb + o.memory_mb, self.vcores + o.vcores)
    }
}

impl AddAssign for Resource {
    fn add_assign(&mut self, o: Resource) {
        *self = *self + o;
    }
}

/// Panics in debug builds on underflow: capacity accounting going negative is a bug of ours.
impl Sub for Resource {
    type Output = Resource;
    fn sub(self, o: Resource) -> Resource {
        debug_assert!(o.fits_in(&self), "resource underflow: {self} - {o}");
        self.saturating_sub(&o)
    }
}

impl SubAssign for Resource {
    fn sub_assign(&mut self, o: Resource) {
        *self = *self - o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_negative() {
        let bad = proto::Resource {
            memory_mb: -5,
            vcores: 1,
        };
        let err = Resource::from_proto("am_resource", Some(&bad)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "am_resource.memory_mb=-5 must be at least 1"
        );
        let bad = proto::Resource {
            memory_mb: 5,
            vcores: 0,
        };
        assert!(Resource::from_proto("capability", Some(&bad)).is_err());
        assert!(Resource::from_proto("capability", None).is_err());
    }
}
