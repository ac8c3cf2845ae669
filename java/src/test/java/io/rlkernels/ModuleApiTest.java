package io.rlkernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.module.Configuration;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.lang.reflect.Executable;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import io.rlkernels.backend.Backends;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.Test;

/**
 * The public API is the API: the module exports {@code tensor}, {@code ops} and {@code backend}
 * and nothing else, resolves with its dependencies, and no public or protected member of an
 * exported type takes or hands out a type the module does not export.
 */
class ModuleApiTest {
    private static final Set<String> API = Set.of("io.rlkernels.tensor", "io.rlkernels.ops", "io.rlkernels.backend");

    /** The library's compiled classes: target/classes, or the jar (the GPU bundle runs the tests on it). */
    private static Path classes() throws Exception {
        return Path.of(Backends.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    }

    private static ModuleDescriptor descriptor() throws Exception {
        Path classes = classes();
        return ModuleFinder.of(classes).findAll().stream().findFirst()
                .orElseThrow(() -> new AssertionError("no module descriptor in " + classes)).descriptor();
    }

    @Test
    void exportsOnlyTheApi() throws Exception {
        ModuleDescriptor d = descriptor();
        assertEquals("io.rlkernels", d.name());
        Set<String> exported = new TreeSet<>();
        for (ModuleDescriptor.Exports e : d.exports()) {
            assertTrue(!e.isQualified(), "no qualified exports: " + e);
            exported.add(e.source());
        }
        assertEquals(new TreeSet<>(API), exported, "exported packages");
    }

    @Test
    void resolvesOnTheModulePath() throws Exception {
        Path classes = classes();
        Path jcuda = Path.of(JCudaDriver.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Configuration cf = Configuration.empty().resolve(ModuleFinder.of(classes, jcuda), ModuleFinder.ofSystem(),
                Set.of("io.rlkernels"));
        assertTrue(cf.findModule("io.rlkernels").isPresent());
        assertTrue(cf.findModule("jcuda").isPresent(), "jcuda resolves as a required module");
    }

    @Test
    void noApiMemberExposesAnInternalType() throws Exception {
        List<String> leaks = new ArrayList<>();
        for (Class<?> c : apiClasses()) {
            check(leaks, c, "extends", c.getGenericSuperclass());
            for (Type i : c.getGenericInterfaces()) {
                check(leaks, c, "implements", i);
            }
            for (Field f : c.getDeclaredFields()) {
                if (visible(f.getModifiers())) {
                    check(leaks, c, "field " + f.getName(), f.getGenericType());
                }
            }
            List<Executable> members = new ArrayList<>(List.of(c.getDeclaredMethods()));
            members.addAll(List.of(c.getDeclaredConstructors()));
            for (Executable m : members) {
                if (!visible(m.getModifiers()) || m.isSynthetic()) {
                    continue;
                }
                if (m instanceof Method method) {
                    check(leaks, c, method.getName() + " returns", method.getGenericReturnType());
                }
                for (Type p : m.getGenericParameterTypes()) {
                    check(leaks, c, m.getName() + " takes", p);
                }
            }
            if (c.isRecord()) {
                for (RecordComponent rc : c.getRecordComponents()) {
                    check(leaks, c, "component " + rc.getName(), rc.getGenericType());
                }
            }
        }
        assertEquals(List.of(), leaks, "API members exposing types the module does not export");
    }

    private static boolean visible(int modifiers) {
        return Modifier.isPublic(modifiers) || Modifier.isProtected(modifiers);
    }

    private static void check(List<String> leaks, Class<?> owner, String where, Type t) {
        if (t == null) {
            return;
        }
        switch (t) {
            case Class<?> c when c.isArray() -> check(leaks, owner, where, c.getComponentType());
            case Class<?> c -> {
                if (!c.isPrimitive() && c.getPackageName().startsWith("io.rlkernels") && !API.contains(c.getPackageName())) {
                    leaks.add(owner.getName() + " " + where + " " + c.getName());
                }
            }
            case ParameterizedType p -> {
                check(leaks, owner, where, p.getRawType());
                for (Type a : p.getActualTypeArguments()) {
                    check(leaks, owner, where, a);
                }
            }
            case WildcardType w -> {
                for (Type b : w.getUpperBounds()) {
                    check(leaks, owner, where, b);
                }
            }
            default -> { } // type variables: their bounds are declared types already checked
        }
    }

    /** Every public (or protected nested) class of the exported packages, from the compiled classes. */
    private static List<Class<?>> apiClasses() throws Exception {
        Path classes = classes();
        List<Class<?>> out = new ArrayList<>();
        try (java.nio.file.FileSystem jar = Files.isDirectory(classes) ? null : java.nio.file.FileSystems.newFileSystem(classes)) {
            Path root = jar == null ? classes : jar.getPath("/");
            for (String pkg : API) {
                try (Stream<Path> files = Files.list(root.resolve(pkg.replace('.', '/')))) {
                    for (Path f : files.filter(p -> p.toString().endsWith(".class")).toList()) {
                        String name = f.getFileName().toString();
                        Class<?> c = Class.forName(pkg + "." + name.substring(0, name.length() - 6), false,
                                ModuleApiTest.class.getClassLoader());
                        if (isApi(c)) {
                            out.add(c);
                        }
                    }
                }
            }
        }
        assertTrue(out.size() > 20, "found the API classes (" + out.size() + ")");
        return out;
    }

    private static boolean isApi(Class<?> c) {
        for (Class<?> k = c; k != null; k = k.getEnclosingClass()) {
            if (!visible(k.getModifiers()) || k.isAnonymousClass() || k.isLocalClass()) {
                return false;
            }
        }
        return true;
    }
}
