package io.rlkernels.backend.emulated;

/** {@link EmulatorSelfTest} on the emulator built with the portable ucontext context switch. */
class EmulatorSelfTestUcontext extends EmulatorSelfTest {
    @Override
    String module() {
        return "/io/rlkernels/emu/libemu_selftest_ucontext.so";
    }
}
