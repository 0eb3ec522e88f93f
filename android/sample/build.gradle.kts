// A small scanner app on top of the stocksync library: scan (or type) a code, see the product and
// its stock, receive or ship a quantity; a status bar follows sync.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.compose")
}

/** A gradle property (gradle.properties, ~/.gradle/gradle.properties or -P) as a Java string literal. */
fun stringProperty(name: String, default: String): String {
    val value = providers.gradleProperty(name).getOrElse(default)
    return "\"" + value.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
}

android {
    namespace = "dev.stocksync.sample"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.stocksync.sample"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        // The ABIs ../build-rust.sh builds.
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
        buildConfigField("String", "HUB_URL", stringProperty("stocksync.hubUrl", "http://10.0.2.2:8080"))
        buildConfigField("String", "ENROLLMENT_KEY", stringProperty("stocksync.enrollmentKey", ""))
    }

    buildFeatures {
        compose = true
        buildConfig = true
    }

    sourceSets {
        getByName("main") {
            java.srcDirs("src/main/kotlin")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(project(":stocksync"))

    implementation(platform("androidx.compose:compose-bom:2024.12.01"))
    implementation("androidx.compose.ui:ui")
    implementation("androidx.compose.material3:material3")
    implementation("androidx.activity:activity-compose:1.9.3")
    implementation("androidx.lifecycle:lifecycle-viewmodel-compose:2.8.7")
    implementation("androidx.lifecycle:lifecycle-runtime-compose:2.8.7")
}
