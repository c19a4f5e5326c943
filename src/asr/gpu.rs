//! Where Whisper runs: the CPU, or a GPU through one of whisper.cpp's GPU backends,
//! compiled in by a Cargo feature (`vulkan`, `cuda`, `metal`).
//!
//! whisper.cpp falls back to the CPU without a word when the GPU it is given does
//! not exist, so [`check`] compares the choice with ggml's list of GPUs ([`gpus`])
//! before a model is loaded on it ([`WhisperModel::load_on`](super::WhisperModel::load_on)).

use crate::{Error, Result};

/// Where a model runs. Default: the CPU.
///
/// ```
/// use cantocap::asr::Device;
/// assert_eq!(Device::default(), Device::Cpu);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU, with [`TranscribeOptions::threads`](super::TranscribeOptions::threads) threads.
    #[default]
    Cpu,
    /// The GPU with this index in [`gpus`] (0: the first). The CPU still runs what
    /// the GPU backend cannot.
    Gpu(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("CPU"),
            Device::Gpu(index) => write!(f, "GPU {index}"),
        }
    }
}

/// The GPU backends compiled into this build, by feature name; empty without one.
pub fn backends() -> Vec<&'static str> {
    [
        ("vulkan", cfg!(feature = "vulkan")),
        ("cuda", cfg!(feature = "cuda")),
        ("metal", cfg!(feature = "metal")),
    ]
    .into_iter()
    .filter_map(|(name, built)| built.then_some(name))
    .collect()
}

/// The GPUs whisper.cpp can run on in this build, in the order its GPU index counts
/// them (discrete and integrated GPUs of every backend compiled in), each as its
/// driver describes it and the backend's name for it: `NVIDIA GeForce RTX 4060
/// (Vulkan0)`. Empty in a build without a GPU backend.
///
/// Vulkan leaves out CPU drivers such as Mesa's lavapipe unless
/// `GGML_VK_VISIBLE_DEVICES` names them (`GGML_VK_VISIBLE_DEVICES=0`); that variable
/// also chooses and orders the Vulkan devices listed.
pub fn gpus() -> Vec<String> {
    if backends().is_empty() {
        return Vec::new();
    }
    ggml_gpus()
}

/// ggml's registry of devices, filtered as `whisper_backend_init_gpu` filters it.
#[allow(unsafe_code)]
fn ggml_gpus() -> Vec<String> {
    use std::ffi::{c_char, CStr};
    use whisper_rs_sys as sys;
    const GPU: sys::ggml_backend_dev_type = sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU;
    const IGPU: sys::ggml_backend_dev_type =
        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_IGPU;
    let text = |s: *const c_char| {
        // SAFETY: ggml returns null or a NUL-terminated string owned by the device,
        // which lives as long as the process; it is copied at once.
        (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    };
    // Listing initialises the backends, which log (devices found, warnings).
    crate::model::quiet_whisper_logs();
    let mut found = Vec::new();
    // SAFETY: ggml builds its device registry once, on first use (a C++ static,
    // thread-safe), and never changes it; every index is below the count it reports,
    // so each device handle is valid.
    unsafe {
        for i in 0..sys::ggml_backend_dev_count() {
            let dev = sys::ggml_backend_dev_get(i);
            if matches!(sys::ggml_backend_dev_type(dev), GPU | IGPU) {
                let description = text(sys::ggml_backend_dev_description(dev)).unwrap_or_default();
                let name = text(sys::ggml_backend_dev_name(dev)).unwrap_or_default();
                found.push(format!("{description} ({name})"));
            }
        }
    }
    found
}

/// Whether this build can run a model on `device`: the CPU always; a GPU with a GPU
/// backend compiled in and that GPU in [`gpus`].
pub fn check(device: Device) -> Result<()> {
    let Device::Gpu(index) = device else { return Ok(()) };
    if backends().is_empty() {
        return Err(Error::GpuNotBuilt);
    }
    let found = gpus();
    if index >= found.len() {
        return Err(Error::NoGpu { index, found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_always_there() {
        assert!(check(Device::Cpu).is_ok());
        assert_eq!(Device::Gpu(1).to_string(), "GPU 1");
    }

    #[cfg(not(any(feature = "vulkan", feature = "cuda", feature = "metal")))]
    #[test]
    fn a_gpu_without_a_backend_says_how_to_build_one() {
        assert!(backends().is_empty() && gpus().is_empty());
        let err = check(Device::Gpu(0)).unwrap_err();
        assert!(matches!(err, Error::GpuNotBuilt));
        assert!(err.to_string().contains("--features vulkan"), "{err}");
    }

    #[test]
    fn ggml_lists_no_gpu_among_cpu_devices() {
        // Without a GPU backend ggml has only the CPU device, which is no GPU; with
        // one, every entry is named.
        let found = ggml_gpus();
        if backends().is_empty() {
            assert_eq!(found, Vec::<String>::new());
        }
        assert!(found.iter().all(|g| g.ends_with(')') && g.len() > 3), "{found:?}");
    }

    #[test]
    fn a_missing_gpu_is_named_with_those_found() {
        let none = Error::NoGpu { index: 0, found: vec![] }.to_string();
        assert!(none.contains("no GPU") && none.contains("GGML_VK_VISIBLE_DEVICES"), "{none}");
        let found = vec![
            "NVIDIA GeForce RTX 4060 (Vulkan0)".to_string(),
            "Intel(R) UHD 770 (Vulkan1)".to_string(),
        ];
        let two = Error::NoGpu { index: 5, found }.to_string();
        assert!(two.contains("GPU 5") && two.contains("1: Intel(R) UHD 770 (Vulkan1)"), "{two}");
    }
}
