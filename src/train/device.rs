//! Picks the burn device that numeric training runs on. All training code takes a
//! `burn::Device` and is the same for every backend; only this module knows which exist.
//!
//! - `gpu`: burn's wgpu backend pinned to Vulkan (a real GPU, or Mesa's lavapipe on a CPU-only
//!   machine). Pinned because wgpu's OpenGL fallback over llvmpipe can hang for minutes.
//! - `cpu`: burn's Flex backend (pure Rust, SIMD, multi-threaded). `CATEGORIZER_CPU_BACKEND=ndarray`
//!   selects the deprecated NdArray backend instead, for comparison.
//! - `auto`: `gpu` when Vulkan shows a hardware adapter (discrete, integrated or virtual GPU),
//!   otherwise `cpu`: a software Vulkan adapter is far slower than the CPU backend.

use burn::prelude::*;
use burn::tensor::wgpu::{WgpuBackend, wgpu};
use serde::Serialize;

use crate::config::DeviceChoice;
use crate::error::{Error, Result};

/// The device training runs on, and how to describe it in logs and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct ComputeDevice {
    #[serde(skip)]
    pub device: Device,
    /// "gpu" or "cpu".
    pub kind: &'static str,
    /// The burn backend: "wgpu-vulkan", "flex" or "ndarray".
    pub backend: &'static str,
    /// The wgpu adapter's name and type, for the GPU.
    pub adapter: Option<String>,
    /// What was asked for.
    pub requested: DeviceChoice,
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.adapter {
            Some(a) => write!(f, "{} ({}, {a})", self.kind, self.backend),
            None => write!(f, "{} ({})", self.kind, self.backend),
        }
    }
}

/// The Vulkan adapters wgpu can see on this machine.
pub fn vulkan_adapters() -> Vec<wgpu::AdapterInfo> {
    ensure_runtime_dir();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN))
        .iter()
        .map(wgpu::Adapter::get_info)
        .collect()
}

/// Vulkan loaders warn (and some fail) without XDG_RUNTIME_DIR; give them a private one.
fn ensure_runtime_dir() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("categorizer-xdg-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        // SAFETY: called before any training thread starts; nothing reads the environment concurrently.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

fn is_hardware(t: wgpu::DeviceType) -> bool {
    matches!(
        t,
        wgpu::DeviceType::DiscreteGpu
            | wgpu::DeviceType::IntegratedGpu
            | wgpu::DeviceType::VirtualGpu
    )
}

/// Whether `device` is one of burn's CPU backends: the training stages then run their host
/// implementations (plain Rust on the rayon threads) instead of tensor code.
pub fn is_cpu(device: &Device) -> bool {
    matches!(
        device.as_dispatch(),
        burn::backend::DispatchDevice::Flex(_) | burn::backend::DispatchDevice::NdArray(_)
    )
}

/// The CPU backend, chosen by measurement (see docs/benchmarks.md).
pub fn cpu() -> ComputeDevice {
    let ndarray =
        std::env::var("CATEGORIZER_CPU_BACKEND").is_ok_and(|v| v.eq_ignore_ascii_case("ndarray"));
    #[allow(deprecated)]
    let (device, backend) = if ndarray {
        (Device::ndarray(), "ndarray")
    } else {
        (Device::flex(), "flex")
    };
    ComputeDevice {
        device,
        kind: "cpu",
        backend,
        adapter: None,
        requested: DeviceChoice::Cpu,
    }
}

/// The wgpu device on the best Vulkan adapter: a discrete GPU first, then integrated, virtual, CPU.
/// Started once per process (wgpu's runtime cannot be registered twice) and shared after that.
pub fn gpu() -> Result<ComputeDevice> {
    static GPU: std::sync::OnceLock<std::result::Result<ComputeDevice, String>> =
        std::sync::OnceLock::new();
    GPU.get_or_init(|| start_gpu().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| Error::Device(e.trim_start_matches("device: ").to_string()))
}

fn start_gpu() -> Result<ComputeDevice> {
    let adapters = vulkan_adapters();
    let rank = |t: wgpu::DeviceType| match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let best = adapters
        .iter()
        .min_by_key(|a| rank(a.device_type))
        .ok_or_else(|| {
            Error::Device(
                "no Vulkan adapter found: install a GPU driver with Vulkan support, or Mesa's \
             software driver (apt-get install mesa-vulkan-drivers libvulkan1), or use --device cpu"
                    .into(),
            )
        })?;
    let same_type_before = adapters
        .iter()
        .take_while(|a| !std::ptr::eq(*a, best))
        .filter(|a| a.device_type == best.device_type)
        .count();
    let kind = match best.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(same_type_before),
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(same_type_before),
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(same_type_before),
        wgpu::DeviceType::Cpu => DeviceKind::Cpu,
        wgpu::DeviceType::Other => DeviceKind::DefaultDevice,
    };
    let device = Device::wgpu_options()
        .device_kind(kind)
        .graphics_api(WgpuBackend::Vulkan)
        .init()
        .map_err(|e| Error::Device(format!("wgpu could not start on {}: {e}", best.name)))?;
    Ok(ComputeDevice {
        device,
        kind: "gpu",
        backend: "wgpu-vulkan",
        adapter: Some(format!("{} ({:?})", best.name, best.device_type)),
        requested: DeviceChoice::Gpu,
    })
}

/// Resolves `--device`. `auto` logs which device it settled on and why.
pub fn select(choice: DeviceChoice) -> Result<ComputeDevice> {
    let mut chosen = match choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Gpu => gpu()?,
        DeviceChoice::Auto => {
            let adapters = vulkan_adapters();
            if adapters.iter().any(|a| is_hardware(a.device_type)) {
                gpu()?
            } else {
                let seen: Vec<String> = adapters
                    .iter()
                    .map(|a| format!("{} ({:?})", a.name, a.device_type))
                    .collect();
                tracing::info!(
                    adapters = ?seen,
                    "device auto: no hardware GPU adapter found through Vulkan, using the CPU backend"
                );
                cpu()
            }
        }
    };
    chosen.requested = choice;
    tracing::info!(device = %chosen, "training device");
    Ok(chosen)
}
