# Offline stand-in for rules_java: toolchain registration parses @bazel_tools//tools/jdk even for a
# pure C build, and that package loads these names. They are the native rules, re-exported unchanged.
java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_plugin = native.java_plugin
java_runtime = native.java_runtime
java_test = native.java_test
java_toolchain = native.java_toolchain
