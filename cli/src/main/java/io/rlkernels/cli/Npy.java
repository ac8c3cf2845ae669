package io.rlkernels.cli;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Shapes;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Arrays;

/**
 * NumPy .npy files (format versions 1-3, little-endian, C order). Reading maps the file read-only,
 * so a 10 GB logits file costs no copy; bf16 travels as uint16 ('&lt;u2'), as PyTorch users dump it.
 * The reader trusts nothing in the file: only regular files are opened, the header is parsed as
 * the dict literal numpy writes ({@link NpyHeader}: duplicate, unknown or missing keys refused),
 * its length is bounded as numpy bounds it, the shape's byte count is overflow-checked and must
 * equal the data the file holds. Every refusal is an {@link IOException} naming the file.
 */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    /** numpy's own limit on the header of a file it loads (np.load's max_header_size). */
    static final int MAX_HEADER_BYTES = 10_000;

    private Npy() {}

    /** A .npy file's header. */
    public record Header(DType dtype, long[] shape, long dataOffset) {}

    /**
     * Maps {@code file} read-only into {@code arena}; '&lt;u2' (uint16) is read as bf16 bits. Data
     * that does not start at a multiple of its element size (numpy always aligns it) is copied
     * into aligned memory of the arena instead.
     */
    public static HostTensor read(Path file, Arena arena) throws IOException {
        requireRegularFile(file);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            Header h = header(file, ch, size);
            long bytes;
            try {
                bytes = Shapes.byteSize("shape", h.dtype(), h.shape());
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": " + e.getMessage());
            }
            long data = size - h.dataOffset();
            if (data != bytes) {
                throw new IOException(file + ": expected " + bytes + " bytes of data for " + h.dtype().shortName()
                        + Arrays.toString(h.shape()) + ", found " + data
                        + (data < bytes ? " (the file is truncated)" : " (bytes after the array)"));
            }
            if (bytes == 0) {
                return HostTensor.wrap(MemorySegment.NULL, h.dtype(), h.shape());
            }
            MemorySegment seg;
            if (h.dataOffset() % h.dtype().byteSize() == 0) {
                seg = ch.map(FileChannel.MapMode.READ_ONLY, h.dataOffset(), bytes, arena);
            } else {
                seg = arena.allocate(bytes, 64);
                for (long off = 0; off < bytes; ) {
                    int n = ch.read(seg.asSlice(off, Math.min(1L << 30, bytes - off)).asByteBuffer(), h.dataOffset() + off);
                    if (n < 0) {
                        throw new IOException(file + ": expected " + bytes + " bytes of data, found the end of the file at " + off);
                    }
                    off += n;
                }
                seg = seg.asReadOnly();
            }
            return HostTensor.wrap(seg, h.dtype(), h.shape());
        }
    }

    /** Refuses what is not a regular file (following links): a directory, a FIFO, a device, a socket. */
    static void requireRegularFile(Path file) throws IOException {
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw new IOException(file + ": expected a .npy file, found no such file");
        }
        if (!a.isRegularFile()) {
            throw new IOException(file + ": expected a regular .npy file, found " + (a.isDirectory() ? "a directory"
                    : a.isOther() ? "a FIFO, socket or device" : "something else"));
        }
    }

    static Header header(Path file, FileChannel ch, long size) throws IOException {
        ByteBuffer pre = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        readFully(ch, pre, 0, (int) Math.min(12, size));
        pre.flip();
        for (byte b : MAGIC) {
            if (!pre.hasRemaining() || pre.get() != b) {
                throw new IOException(file + ": not a .npy file (bad magic)");
            }
        }
        if (size < 10) {
            throw new IOException(file + ": expected a .npy file (at least 10 bytes), found " + size + " bytes");
        }
        int major = pre.get() & 0xFF;
        int minor = pre.get() & 0xFF;
        if (major < 1 || major > 3 || minor != 0) {
            throw new IOException(file + ": expected .npy format version 1.0, 2.0 or 3.0, found " + major + "." + minor);
        }
        long headerLen;
        int lenBytes = major == 1 ? 2 : 4;
        if (pre.remaining() < lenBytes) {
            throw new IOException(file + ": expected a header length, found the end of the file");
        }
        headerLen = major == 1 ? pre.getShort() & 0xFFFF : pre.getInt() & 0xFFFFFFFFL;
        long offset = 8 + lenBytes;
        if (headerLen > MAX_HEADER_BYTES) {
            throw new IOException(file + ": expected a header of at most " + MAX_HEADER_BYTES + " bytes (numpy's limit), found "
                    + headerLen);
        }
        if (headerLen > size - offset) {
            throw new IOException(file + ": expected a header of " + headerLen + " bytes as it says, found " + (size - offset)
                    + " bytes in the rest of the file");
        }
        ByteBuffer hb = ByteBuffer.allocate((int) headerLen);
        readFully(ch, hb, offset, (int) headerLen);
        String text;
        try {
            text = (major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1).newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT).decode(hb.flip()).toString();
        } catch (CharacterCodingException e) {
            throw new IOException(file + ": expected a UTF-8 header (format 3.0), found malformed bytes");
        }
        NpyHeader.Fields f;
        try {
            f = NpyHeader.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage());
        }
        if (f.fortranOrder() && f.shape().length > 1) {
            throw new IOException(file + ": expected C order, found fortran_order True (save np.ascontiguousarray(x))");
        }
        return new Header(dtypeOf(file, f.descr()), f.shape(), offset + headerLen);
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long position, int bytes) throws IOException {
        b.limit(bytes);
        while (b.hasRemaining()) {
            if (ch.read(b, position + b.position()) < 0) {
                throw new IOException("unexpected end of file");
            }
        }
    }

    private static DType dtypeOf(Path file, String descr) throws IOException {
        return switch (descr) {
            case "<f4" -> DType.F32;
            case "<f8" -> DType.F64;
            case "<f2" -> DType.F16;
            case "<u2" -> DType.BF16; // bf16 bits, as torch users dump them: t.view(torch.uint16).numpy()
            case "<i4" -> DType.I32;
            case "<i8" -> DType.I64;
            case "|u1", "|b1" -> DType.U8;
            default -> throw new IOException(file + ": expected dtype float32, float64, float16, uint16 (bf16 bits), int32, int64,"
                    + " uint8 or bool (little-endian), found '" + descr + "'");
        };
    }

    /** Writes a tensor (bf16 as '&lt;u2'). */
    public static void write(Path file, HostTensor t) throws IOException {
        String descr = switch (t.dtype()) {
            case F32 -> "<f4";
            case F64 -> "<f8";
            case F16 -> "<f2";
            case BF16 -> "<u2";
            case I32 -> "<i4";
            case I64 -> "<i8";
            case U8 -> "|u1";
        };
        long[] shape = t.shape();
        StringBuilder dims = new StringBuilder();
        for (long dim : shape) {
            dims.append(dim).append(", ");
        }
        String shapeText = shape.length == 1 ? "(" + shape[0] + ",)"
                : "(" + (dims.length() > 0 ? dims.substring(0, dims.length() - 2) : "") + ")";
        String dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shapeText + ", }";
        int total = 10 + dict.length() + 1;
        int padded = (total + 63) / 64 * 64; // the data starts 64-byte aligned
        String header = dict + " ".repeat(padded - total) + "\n";
        ByteBuffer pre = ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN);
        pre.put(MAGIC).put((byte) 1).put((byte) 0).putShort((short) header.length()).flip();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, pre);
            writeFully(ch, ByteBuffer.wrap(header.getBytes(StandardCharsets.ISO_8859_1)));
            MemorySegment seg = t.segment();
            long chunk = 1L << 28;
            for (long off = 0; off < t.byteSize(); off += chunk) {
                long n = Math.min(chunk, t.byteSize() - off);
                MemorySegment slice = seg.asSlice(off, n);
                ByteBuffer buf = slice.isNative() ? slice.asByteBuffer() : ByteBuffer.wrap(slice.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                writeFully(ch, buf);
            }
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }
}
