//! `--gpu`, `--gpu-device N`: where the Whisper model runs, for every command that
//! loads one (`transcribe`, `live`, `serve`, `eval`).
//!
//! A GPU needs a build with a GPU feature (`vulkan`, `cuda`, `metal`); the library
//! refuses one it cannot use ([`cantocap::asr::gpu::check`]) rather than let
//! whisper.cpp fall back to the CPU unnoticed.

use cantocap::asr::Device;

/// The GPU flags, shared by the commands that load a model.
#[derive(clap::Args, Debug)]
pub struct GpuArgs {
    /// Decode on the GPU (the first one; see --gpu-device). Needs a cantocap built
    /// with a GPU backend: cargo build --release --features vulkan (or cuda, metal).
    #[arg(long)]
    pub gpu: bool,
    /// Decode on this GPU, by index among those the backend finds (0: the first);
    /// implies --gpu.
    #[arg(long, value_name = "N")]
    pub gpu_device: Option<usize>,
}

impl GpuArgs {
    /// The device these flags ask for.
    pub fn device(&self) -> Device {
        match (self.gpu, self.gpu_device) {
            (_, Some(index)) => Device::Gpu(index),
            (true, None) => Device::Gpu(0),
            (false, None) => Device::Cpu,
        }
    }
}

/// A line naming the GPU chosen, if it exists (else loading the model says what is
/// wrong).
pub fn describe(device: Device) -> Option<String> {
    let Device::Gpu(index) = device else { return None };
    let name = cantocap::asr::gpu::gpus().into_iter().nth(index)?;
    Some(format!("decoding on GPU {index}: {name}"))
}
