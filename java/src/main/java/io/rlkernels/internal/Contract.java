package io.rlkernels.internal;

import java.util.Optional;
import java.util.zip.CRC32;

/**
 * The contract header (native/include/rlk_contract.h: codes, stats slots, launch constants) as the
 * jar carries it. The build checks the Java constants against it (ContractHeaderTest); each native
 * library reports the CRC-32 of the header it was compiled from, and a library built from another
 * contract is refused when it loads, not discovered as wrong numbers later.
 */
public final class Contract {
    public static final String RESOURCE = "/io/rlkernels/native/rlk_contract.h";
    private static final long CRC = crc();

    private Contract() {}

    private static long crc() {
        Optional<byte[]> header = BundledFiles.read(RESOURCE);
        if (header.isEmpty()) {
            return -1;
        }
        CRC32 c = new CRC32();
        c.update(header.get());
        return c.getValue();
    }

    /** Null when a library compiled against a header with CRC {@code found} (unsigned) matches the jar, else why not. */
    public static String mismatch(String library, int found) {
        long f = Integer.toUnsignedLong(found);
        if (CRC < 0) {
            return "rlk_contract.h is not in the jar, so " + library + " cannot be checked against it: rebuild";
        }
        return f == CRC ? null
                : library + " was compiled from another rlk_contract.h (CRC-32 " + Long.toHexString(f) + ", the jar's is "
                        + Long.toHexString(CRC) + "): rebuild";
    }
}
