//! SHA-256 from Zig's standard library, built for the architecture's baseline CPU (the portable rounds).
//! sha256_hw.zig is the same code built with the CPU's SHA instructions enabled; sha256.c picks one at run
//! time. Both use the same context layout (std's Sha256 struct) behind oci2bin_sha256_ctx.
const Sha256 = @import("std").crypto.hash.sha2.Sha256;

pub const panic = @import("std").debug.no_panic;

comptime {
    if (@sizeOf(Sha256) > 512 or @alignOf(Sha256) > 64) @compileError("oci2bin_sha256_ctx too small");
}

export fn oci2bin_sha256_base_init(ctx: *anyopaque) void {
    const h: *Sha256 = @ptrCast(@alignCast(ctx));
    h.* = Sha256.init(.{});
}

export fn oci2bin_sha256_base_update(ctx: *anyopaque, data: [*]const u8, len: usize) void {
    const h: *Sha256 = @ptrCast(@alignCast(ctx));
    h.update(data[0..len]);
}

export fn oci2bin_sha256_base_final(ctx: *anyopaque, out: *[32]u8) void {
    const h: *Sha256 = @ptrCast(@alignCast(ctx));
    h.final(out);
}
