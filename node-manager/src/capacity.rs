//! What this node offers the cluster: the host's memory and logical cores as `sysinfo` sees them,
//! unless the configuration names either.

use spindle_containers::Resource;

/// The node's capability: `memory_mb`/`vcores` when configured, else the host's totals.
pub fn node_capacity(memory_mb: Option<u64>, vcores: Option<u32>) -> Resource {
    let host = (memory_mb.is_none() || vcores.is_none()).then(host_totals);
    Resource::new(
        memory_mb.unwrap_or_else(|| host.map_or(1024, |h| h.memory_mb)),
        vcores.unwrap_or_else(|| host.map_or(1, |h| h.vcores)),
    )
}

/// Total physical memory in MB and logical cores; 1024 MB and 1 core if the host will not say.
fn host_totals() -> Resource {
    let Ok(mut system) = sysinfo::System::new() else {
        tracing::warn!("cannot read the host's memory and cores; offering 1024 MB, 1 vcore");
        return Resource::new(1024, 1);
    };
    system.refresh_memory();
    system.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let memory_mb = system.total_memory() / (1024 * 1024);
    let vcores = u32::try_from(system.cpus().len()).unwrap_or(u32::MAX);
    Resource::new(memory_mb.max(1), vcores.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_values_win() {
        assert_eq!(node_capacity(Some(2048), Some(3)), Resource::new(2048, 3));
    }

    #[test]
    fn the_host_fills_in_what_is_not_configured() {
        let host = node_capacity(None, None);
        assert!(host.memory_mb >= 1 && host.vcores >= 1);
        assert_eq!(
            node_capacity(Some(512), None),
            Resource::new(512, host.vcores)
        );
        assert_eq!(node_capacity(None, Some(2)).memory_mb, host.memory_mb);
    }
}
