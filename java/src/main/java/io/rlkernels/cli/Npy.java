package io.rlkernels.cli;

import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * NumPy .npy files (format versions 1-3, little-endian, C order). Reading maps the file, so a
 * 10 GB logits file costs no copy; bf16 travels as uint16 ('<u2'), as PyTorch users dump it.
 */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private Npy() {}

    /** A .npy file's header. */
    public record Header(DType dtype, long[] shape, long dataOffset) {}

    /** Maps {@code file} read-only into {@code arena}; '<u2' (uint16) is read as bf16 bits. */
    public static HostTensor read(Path file, Arena arena) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            Header h = header(file, ch);
            long bytes = io.rlkernels.tensor.Shapes.numel(h.shape()) * h.dtype().byteSize();
            if (ch.size() < h.dataOffset() + bytes) {
                throw new IOException(file + ": expected " + bytes + " bytes of data, found " + (ch.size() - h.dataOffset()));
            }
            MemorySegment seg = bytes == 0 ? MemorySegment.ofArray(new byte[0])
                    : ch.map(FileChannel.MapMode.READ_ONLY, h.dataOffset(), bytes, arena);
            return HostTensor.wrap(seg, h.dtype(), h.shape());
        }
    }

    static Header header(Path file, FileChannel ch) throws IOException {
        ByteBuffer pre = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        ch.read(pre, 0);
        pre.flip();
        for (byte b : MAGIC) {
            if (pre.remaining() == 0 || pre.get() != b) {
                throw new IOException(file + ": not a .npy file (bad magic)");
            }
        }
        int major = pre.get() & 0xFF;
        pre.get();
        long headerLen;
        int lenBytes;
        if (major == 1) {
            headerLen = pre.getShort() & 0xFFFF;
            lenBytes = 2;
        } else if (major == 2 || major == 3) {
            headerLen = pre.getInt() & 0xFFFFFFFFL;
            lenBytes = 4;
        } else {
            throw new IOException(file + ": unsupported .npy version " + major);
        }
        long offset = 8 + lenBytes;
        ByteBuffer hb = ByteBuffer.allocate((int) headerLen);
        ch.read(hb, offset);
        String text = new String(hb.array(), StandardCharsets.ISO_8859_1);
        Matcher d = DESCR.matcher(text);
        Matcher f = FORTRAN.matcher(text);
        Matcher s = SHAPE.matcher(text);
        if (!d.find() || !f.find() || !s.find()) {
            throw new IOException(file + ": cannot parse the .npy header: " + text.trim());
        }
        if (f.group(1).equals("True")) {
            throw new IOException(file + ": expected C order, found fortran_order True (save np.ascontiguousarray(x))");
        }
        return new Header(dtypeOf(file, d.group(1)), parseShape(s.group(1)), offset + headerLen);
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

    private static long[] parseShape(String s) {
        List<Long> dims = new ArrayList<>();
        for (String part : s.split(",")) {
            String p = part.trim().replace("L", "");
            if (!p.isEmpty()) {
                dims.add(Long.parseLong(p));
            }
        }
        return dims.stream().mapToLong(Long::longValue).toArray();
    }

    /** Writes a tensor (bf16 as '<u2'). */
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
