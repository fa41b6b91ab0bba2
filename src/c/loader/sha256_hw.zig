//! SHA-256 from Zig's standard library, built with the CPU's SHA instructions: the build passes a per-file
//! -mcpu (zig_cpu in src/c/loader/BUILD: x86_64 `+sha+avx2`, aarch64 `+sha2`), which makes std select its
//! SHA-NI / ARMv8 SHA2 rounds at compile time. Only called after sha256.c has checked the CPU (cpuid /
//! AT_HWCAP). The build fails if the selected CPU would not get those rounds (a silently portable "hw" build
//! would only cost time, but it would make the run-time choice pointless).
const std = @import("std");
const builtin = @import("builtin");
const Sha256 = std.crypto.hash.sha2.Sha256;

pub const panic = std.debug.no_panic;

comptime {
    if (@sizeOf(Sha256) > 512 or @alignOf(Sha256) > 64) @compileError("oci2bin_sha256_ctx too small");
    // The conditions std's sha2.zig uses to pick its instruction-based rounds.
    const accelerated = switch (builtin.cpu.arch) {
        .x86_64 => builtin.cpu.hasAll(.x86, &.{ .sha, .avx2 }),
        .aarch64 => builtin.cpu.has(.aarch64, .sha2),
        else => false,
    };
    if (!accelerated) @compileError("sha256_hw.zig must be built with -mcpu=baseline+sha+avx2 (x86_64) or baseline+sha2 (aarch64)");
}

export fn oci2bin_sha256_hw_init(ctx: *anyopaque) void {
    const h: *Sha256 = @ptrCast(@alignCast(ctx));
    h.* = Sha256.init(.{});
}

export fn oci2bin_sha256_hw_update(ctx: *anyopaque, data: [*]const u8, len: usize) void {
    const h: *Sha256 = @ptrCast(@alignCast(ctx));
    h.update(data[0..len]);
}

export fn oci2bin_sha256_hw_final(ctx: *anyopaque, out: *[32]u8) void {
    const h: *Sha256 = @ptrCast(@alignCast(ctx));
    h.final(out);
}
