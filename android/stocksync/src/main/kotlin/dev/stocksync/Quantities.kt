package dev.stocksync

import dev.stocksync.ffi.Leg
import dev.stocksync.ffi.Money
import dev.stocksync.ffi.StockRow
import java.math.BigDecimal

// The native API carries decimals as exact strings ("12.5"); these turn them into BigDecimal and
// back without going through Double.

/** The text the native API expects for a decimal: plain notation, never `1E+1`. */
fun BigDecimal.toWire(): String = toPlainString()

/** A price or cost, e.g. `money(BigDecimal("4.99"), "EUR")`. */
fun money(amount: BigDecimal, currency: String): Money = Money(amount = amount.toWire(), currency = currency)

/** The amount as a [BigDecimal]. */
val Money.decimalAmount: BigDecimal get() = BigDecimal(amount)

/** `"4.99 EUR"`: the form `ConflictResolution.UseValue` takes for a price. */
val Money.display: String get() = "$amount $currency"

/** On hand as seen on this device: the hub's figure plus this device's unsent movements. */
val StockRow.onHandQuantity: BigDecimal get() = BigDecimal(onHand)

/** What the hub confirmed. */
val StockRow.syncedOnHandQuantity: BigDecimal get() = BigDecimal(syncedOnHand)

/** This device's movements not yet confirmed by the hub. */
val StockRow.pendingQuantity: BigDecimal get() = BigDecimal(pending)

/** Reserved by allocations. */
val StockRow.allocatedQuantity: BigDecimal get() = BigDecimal(allocated)

/** On hand minus allocated. */
val StockRow.availableQuantity: BigDecimal get() = BigDecimal(available)

/** How a movement changed on hand at one location. */
val Leg.onHandChange: BigDecimal get() = BigDecimal(onHandDelta)
