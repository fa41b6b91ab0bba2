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
/// oci2bin_gz_read's output buffer; it keeps the last 32 KiB (the history) and moves it to the front when full,
/// so it is much bigger than the history (std's indirect mode, with its 64 KiB minimum, moved 32 KiB after
/// every 32 KiB of output).
const window_len = 1024 * 1024;

comptime {
    if (window_len < 2 * flate.history_len) @compileError("the inflate window must hold twice the history");
}

/// The decompressor runs in std's direct mode: it writes into a buffer the caller provides, whose first bytes
/// hold the history. oci2bin_gz_decode_into hands it the pipeline's ring slots (no copy of the output);
/// oci2bin_gz_read hands it `window` and copies out. One Gz uses one of the two.
const Gz = struct {
    cb: ReadFn,
    ctx: ?*anyopaque,
    input: Reader,
    dec: flate.Decompress,
    failed_read: bool,
    done: bool,
    wseek: usize,
    wend: usize,
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
    gz.done = false;
    gz.wseek = 0;
    gz.wend = 0;
    gz.input = .{ .vtable = &input_vtable, .buffer = &gz.in_buf, .seek = 0, .end = 0 };
    gz.dec = flate.Decompress.init(&gz.input, .gzip, &.{});
    return gz;
}

export fn oci2bin_gz_free(p: ?*anyopaque) void {
    const gz: *Gz = @ptrCast(@alignCast(p orelse return));
    std.heap.page_allocator.destroy(gz);
}

// The output writer never grows or flushes: each stream() call is limited to the room left in the buffer.
fn noDrain(w: *Writer, data: []const []const u8, splat: usize) Writer.Error!usize {
    _ = w;
    _ = data;
    _ = splat;
    return error.WriteFailed;
}

fn noRebase(w: *Writer, preserve: usize, capacity: usize) Writer.Error!void {
    _ = w;
    _ = preserve;
    _ = capacity;
    return error.WriteFailed;
}

const out_vtable: Writer.VTable = .{ .drain = noDrain, .rebase = noRebase };

fn decodeInto(gz: *Gz, buf: []u8, hist: usize) isize {
    var w: Writer = .{ .vtable = &out_vtable, .buffer = buf, .end = hist };
    while (w.end < buf.len and !gz.done) {
        _ = gz.dec.reader.stream(&w, .limited(buf.len - w.end)) catch |err| switch (err) {
            // RFC 1952: a gzip file may hold several members one after the other (eStargz layers, `cat a.gz
            // b.gz`); docker/containerd (Go's gzip) decode them all. The decompressor only peeks at its input,
            // so the next member starts right after this one's footer; its back-references cannot reach back.
            error.EndOfStream => if (gz.input.peekByte()) |_| {
                gz.dec = flate.Decompress.init(&gz.input, .gzip, &.{});
            } else |e| switch (e) {
                error.EndOfStream => gz.done = true,
                error.ReadFailed => return if (gz.failed_read) GZ_ERR_READ else GZ_ERR_DATA,
            },
            error.ReadFailed => return if (gz.failed_read) GZ_ERR_READ else GZ_ERR_DATA,
            error.WriteFailed => return GZ_ERR_DATA, // not reached: every call is limited to the room left
        };
    }
    return @intCast(w.end);
}

/// Decodes into buf[hist..cap). buf[0..hist] must hold the last min(32 KiB, everything) bytes this Gz produced
/// (the history back-references reach into). Returns the end of the data in buf: cap when full, less at the end
/// of the stream (hist: nothing more); or a negative GZ_ERR_*.
export fn oci2bin_gz_decode_into(p: *anyopaque, buf: [*]u8, hist: usize, cap: usize) isize {
    const gz: *Gz = @ptrCast(@alignCast(p));
    if (hist > flate.history_len or hist >= cap) return GZ_ERR_DATA;
    return decodeInto(gz, buf[0..cap], hist);
}

/// Returns bytes produced (0 = end of stream) or a negative GZ_ERR_*.
export fn oci2bin_gz_read(p: *anyopaque, out: [*]u8, len: usize) isize {
    const gz: *Gz = @ptrCast(@alignCast(p));
    if (len == 0) return 0;
    if (gz.wseek == gz.wend) {
        var hist = gz.wend;
        if (gz.window.len - gz.wend < flate.history_len) {
            hist = flate.history_len;
            std.mem.copyForwards(u8, gz.window[0..hist], gz.window[gz.wend - hist .. gz.wend]);
        }
        const end = decodeInto(gz, &gz.window, hist);
        if (end < 0) return end;
        gz.wseek = hist;
        gz.wend = @intCast(end);
    }
    const n = @min(len, gz.wend - gz.wseek);
    @memcpy(out[0..n], gz.window[gz.wseek..][0..n]);
    gz.wseek += n;
    return @intCast(n);
}
