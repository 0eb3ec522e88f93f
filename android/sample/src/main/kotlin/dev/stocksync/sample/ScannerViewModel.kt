package dev.stocksync.sample

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope

/** Hosts the [Scanner] in the ViewModel's scope; the node itself belongs to [SampleApp]. */
class ScannerViewModel(application: Application) : AndroidViewModel(application) {
    private val app = application as SampleApp

    /** The screen's state and actions. */
    val scanner = Scanner(viewModelScope, app.node, app::enrollIfNeeded)
}
