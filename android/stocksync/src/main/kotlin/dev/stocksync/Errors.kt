package dev.stocksync

import dev.stocksync.ffi.StocksyncException

// Every failure of the native API is a dev.stocksync.ffi.StocksyncException subclass; each says
// what the app should do next (see the KDoc of InventoryNode). Their `message` lists the fields
// ("reason=…"); these give the text to show a person instead.

/** What a person should read: the reason, or for [StocksyncException.NotFound] what is missing. */
val StocksyncException.userMessage: String
    get() = when (this) {
        is StocksyncException.Offline -> reason
        is StocksyncException.AuthRequired -> reason
        is StocksyncException.Rule -> reason
        is StocksyncException.NotFound -> "$entity `$key` not found"
        is StocksyncException.Invalid -> reason
        is StocksyncException.Hub -> "$reason (HTTP $status, $code)"
        is StocksyncException.Storage -> reason
    }

/** The messages for one input field of a [StocksyncException.Invalid] (e.g. `quantity`). */
fun StocksyncException.Invalid.messagesFor(field: String): List<String> =
    fields.filter { it.field == field }.flatMap { it.messages }
