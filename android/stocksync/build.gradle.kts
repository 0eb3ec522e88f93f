// The stocksync Android library: the generated uniffi bindings (package dev.stocksync.ffi), the
// idiomatic layer (package dev.stocksync), both in src/main/kotlin, and libstocksync_ffi.so per ABI
// in src/main/jniLibs (built by ../build-rust.sh, not committed).
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.stocksync"
    compileSdk = 35

    defaultConfig {
        // 26: the generated bindings use java.time.Instant for timestamps.
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            java.srcDirs("src/main/kotlin")
            jniLibs.srcDirs("src/main/jniLibs")
        }
        getByName("test") {
            java.srcDirs("src/test/kotlin")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    testOptions {
        unitTests.all { test ->
            // The JVM scenario test loads the host build of the library (`bash scripts/bindings.sh`
            // in the repo) and starts the hub binary (`cargo build -p stocksync`).
            val repo = rootProject.projectDir.parentFile
            test.systemProperty("jna.library.path", File(repo, "target/debug").path)
            test.environment("STOCKSYNC_BIN", File(repo, "target/debug/stocksync").path)
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // JNA as an AAR: it carries libjnidispatch.so for every Android ABI.
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    // In the public API (Flow, StateFlow, CoroutineDispatcher). 1.8.0 is what the JVM test uses.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.8.0")

    testImplementation("junit:junit:4.13.2")
    // The host JVM's JNA (the AAR above has Android's native parts only).
    testImplementation("net.java.dev.jna:jna:5.14.0")
}
