//! C-ABI wrappers around Zig's standard library for the loader:
//! gzip inflate (std.compress.flate). SHA-256 is in sha256_base.zig / sha256_hw.zig.
//! The C side sees them through zig_glue.h. No allocation happens outside
//! oci2bin_gz_new/oci2bin_gz_free (mmap via std.heap.page_allocator).
const std = @import("std");
const flate = std.compress.flate;
const Reader = std.Io.Reader;
const Writer = std.Io.Writer;

pub const panic = std.debug.no_panic;

/// Pulls up to `len` compressed bytes; returns count, 0 at end, <0 on error.
const ReadFn = *const fn (ctx: ?*anyopaque, buf: [*]u8, len: usize) callconv(.c) isize;

const in_buf_len = 128 * 1024;
/// The decompressor's output buffer: it keeps the last 32 KiB (the history) and moves it to the front each
/// time the buffer is full, so a bigger buffer moves it less often (at std's minimum of 64 KiB, every 32 KiB
/// of output costs a 32 KiB memmove: ~7% of the inflate time of a 180 MB layer).
const window_len = 1024 * 1024;

comptime {
    if (window_len < flate.max_window_len) @compileError("the inflate window must hold flate.max_window_len");
}

const Gz = struct {
    cb: ReadFn,
    ctx: ?*anyopaque,
    input: Reader,
    dec: flate.Decompress,
    failed_read: bool,
    in_buf: [in_buf_len]u8,
    window: [window_len]u8,
};

fn inputFill(r: *Reader) Reader.Error!void {
    const gz: *Gz = @alignCast(@fieldParentPtr("input", r));
    if (r.seek == r.end) {
        r.seek = 0;
        r.end = 0;
    } else if (r.end == r.buffer.len) {
        const n = r.end - r.seek;
        std.mem.copyForwards(u8, r.buffer[0..n], r.buffer[r.seek..r.end]);
        r.seek = 0;
        r.end = n;
    }
    const room = r.buffer[r.end..];
    const got = gz.cb(gz.ctx, room.ptr, room.len);
    if (got < 0) {
        gz.failed_read = true;
        return error.ReadFailed;
    }
    if (got == 0) return error.EndOfStream;
    r.end += @intCast(got);
}

fn inputStream(r: *Reader, w: *Writer, limit: std.Io.Limit) Reader.StreamError!usize {
    _ = w;
    _ = limit;
    try inputFill(r);
    return 0;
}

fn inputReadVec(r: *Reader, data: [][]u8) Reader.Error!usize {
    _ = data;
    try inputFill(r);
    return 0;
}

const input_vtable: Reader.VTable = .{
    .stream = inputStream,
    .readVec = inputReadVec,
};

/// Error codes returned (negated) by oci2bin_gz_read.
pub const GZ_ERR_DATA: isize = -1; // corrupt or truncated stream
pub const GZ_ERR_READ: isize = -2; // the input callback failed

export fn oci2bin_gz_new(cb: ReadFn, ctx: ?*anyopaque) ?*anyopaque {
    const gz = std.heap.page_allocator.create(Gz) catch return null;
    gz.cb = cb;
    gz.ctx = ctx;
    gz.failed_read = false;
    gz.input = .{ .vtable = &input_vtable, .buffer = &gz.in_buf, .seek = 0, .end = 0 };
    gz.dec = flate.Decompress.init(&gz.input, .gzip, &gz.window);
    return gz;
}

export fn oci2bin_gz_free(p: ?*anyopaque) void {
    const gz: *Gz = @ptrCast(@alignCast(p orelse return));
    std.heap.page_allocator.destroy(gz);
}

/// Returns bytes produced (0 = end of stream) or a negative GZ_ERR_*.
export fn oci2bin_gz_read(p: *anyopaque, out: [*]u8, len: usize) isize {
    const gz: *Gz = @ptrCast(@alignCast(p));
    if (len == 0) return 0;
    const n = gz.dec.reader.readSliceShort(out[0..len]) catch {
        return if (gz.failed_read) GZ_ERR_READ else GZ_ERR_DATA;
    };
    return @intCast(n);
}
