package io.rlkernels.backend.cuda;

/** Grid and block sizes (x only: every kernel here is one-dimensional) and dynamic shared memory. */
public record LaunchShape(int gridX, int blockX, int sharedBytes) {
    public LaunchShape {
        if (gridX < 1 || blockX < 1 || blockX > 1024 || blockX % 32 != 0 || sharedBytes < 0) {
            throw new IllegalArgumentException("launch shape: expected grid >= 1 and a block of whole warps <= 1024, found grid "
                    + gridX + ", block " + blockX + ", shared " + sharedBytes);
        }
    }
}
