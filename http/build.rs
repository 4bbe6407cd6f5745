//! Compiles `proto/logs.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let fds = protox::compile(["logs.proto"], [proto_dir])?;
    // The codec reports an undecodable request as INVALID_ARGUMENT (see `grpc::codec`).
    tonic_prost_build::configure().codec_path("crate::grpc::codec::StrictCodec").compile_fds(fds)?;
    println!("cargo:rerun-if-changed={proto_dir}/logs.proto");
    Ok(())
}
