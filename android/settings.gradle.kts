// The Android side of stocksync: the library module (generated uniffi bindings + the idiomatic
// Kotlin layer + the native libraries built by build-rust.sh) and a sample scanner app.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "stocksync-android"
include(":stocksync", ":sample")
