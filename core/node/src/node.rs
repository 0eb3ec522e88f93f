use crate::NodeError;
use crate::sync::{NodeInner, SyncConfig};
use std::path::Path;
use std::sync::Arc;
use stocksync_model::{
    AllocationId, Decimal, Location, Money, MovementKind, NewLocation, NewProduct, Product,
    ProductPatch, Quantity, ReasonCode, TransactionId, TransferId, Uom,
};
use stocksync_store::{
    Allocation, DeviceInfo, LedgerFilter, LedgerRow, NewDevice, OutboxRow, Recorded, StockFilter,
    StockRow, Store, StoreOptions,
};

/// A stock movement as a user asks for it: products by barcode, SKU or id; locations by code or
/// id; the quantity in the product's unit unless `uom` is given (then it must match).
#[derive(Clone, Debug, PartialEq)]
pub enum Movement {
    /// Goods in.
    Receive {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// How much (> 0).
        quantity: Decimal,
        /// Unit, if the user named one.
        uom: Option<Uom>,
        /// Cost of one unit.
        unit_cost: Option<Money>,
        /// Delivery note, PO.
        reference: Option<String>,
    },
    /// Goods out; refused locally when the device's view cannot cover it.
    Ship {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// How much (> 0).
        quantity: Decimal,
        /// Unit, if the user named one.
        uom: Option<Uom>,
        /// Order number.
        reference: Option<String>,
    },
    /// A signed correction with a reason.
    Adjust {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// Signed change (≠ 0).
        delta: Decimal,
        /// Unit, if the user named one.
        uom: Option<Uom>,
        /// Why.
        reason: ReasonCode,
    },
    /// A count: posts the difference from what the device shows now.
    Count {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// What was counted.
        counted: Decimal,
        /// Unit, if the user named one.
        uom: Option<Uom>,
    },
    /// Between two locations, both legs or neither.
    Transfer {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        from: String,
        /// Code or id.
        to: String,
        /// How much (> 0).
        quantity: Decimal,
        /// Unit, if the user named one.
        uom: Option<Uom>,
    },
    /// Promise stock to an order.
    Allocate {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// How much (> 0, ≤ available).
        quantity: Decimal,
        /// Unit, if the user named one.
        uom: Option<Uom>,
    },
    /// Give an allocation back.
    Release {
        /// The allocation's id.
        allocation_id: String,
    },
}

/// The node. Every local method works offline and answers from the local database; the sync
/// methods (`enroll`, `sync_now`, `start`, …) talk to the hub. Cheap to clone: clones share one
/// database, one sync task and one set of listeners.
#[derive(Clone)]
pub struct SyncNode {
    pub(crate) inner: Arc<NodeInner>,
}

impl SyncNode {
    /// Opens (or creates) the node's database at `path`, with the default sync settings.
    pub fn open(path: impl AsRef<Path>, options: &StoreOptions) -> Result<SyncNode, NodeError> {
        Self::open_with(path, options, SyncConfig::default())
    }

    /// Opens (or creates) the node's database at `path` with these sync settings.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &StoreOptions,
        config: SyncConfig,
    ) -> Result<SyncNode, NodeError> {
        Ok(SyncNode {
            inner: Arc::new(NodeInner::new(Store::open(path, options)?, config)),
        })
    }

    /// Makes this database a device, once.
    pub fn init(&self, device: &NewDevice) -> Result<DeviceInfo, NodeError> {
        let device = self.inner.store.init_device(device)?;
        self.inner.announce_status();
        Ok(device)
    }

    /// The device this database belongs to.
    pub fn device(&self) -> Result<DeviceInfo, NodeError> {
        Ok(self.inner.store.device()?)
    }

    /// Adds a location.
    pub fn add_location(&self, code: &str, name: &str) -> Result<Location, NodeError> {
        self.inner.store.device()?;
        let location = self.inner.store.add_location(&NewLocation {
            code: code.to_owned(),
            name: name.to_owned(),
        })?;
        self.inner.local_write();
        Ok(location)
    }

    /// Every location.
    pub fn locations(&self) -> Result<Vec<Location>, NodeError> {
        Ok(self.inner.store.locations()?)
    }

    /// A location by code or id.
    pub fn location(&self, code_or_id: &str) -> Result<Location, NodeError> {
        Ok(self.inner.store.location(code_or_id)?)
    }

    /// Adds a product.
    pub fn add_product(&self, product: &NewProduct) -> Result<Product, NodeError> {
        let product = self.inner.store.add_product(product)?;
        self.inner.local_write();
        Ok(product)
    }

    /// Adds many products at once: all or none.
    pub fn import_products(&self, products: &[NewProduct]) -> Result<usize, NodeError> {
        let n = self.inner.store.import_products(products)?;
        self.inner.local_write();
        Ok(n)
    }

    /// Edits a product (by barcode, SKU or id).
    pub fn edit_product(&self, product: &str, patch: &ProductPatch) -> Result<Product, NodeError> {
        let found = self.find_product(product)?;
        let product = self.inner.store.edit_product(&found.id, patch)?;
        self.inner.local_write();
        Ok(product)
    }

    /// The scan lookup: by barcode, SKU or id.
    pub fn find_product(&self, code: &str) -> Result<Product, NodeError> {
        self.inner
            .store
            .find_product(code.trim())?
            .ok_or_else(|| NodeError::NotFound {
                entity: "product".into(),
                key: code.to_owned(),
            })
    }

    /// Every product.
    pub fn products(&self) -> Result<Vec<Product>, NodeError> {
        Ok(self.inner.store.products()?)
    }

    /// Records a movement, or refuses it (with the rule's name) and writes nothing.
    pub fn record(&self, movement: &Movement) -> Result<Recorded, NodeError> {
        let resolved = self.resolve(movement)?;
        let recorded = self.inner.store.record_movement(&resolved)?;
        self.inner.local_write();
        Ok(recorded)
    }

    /// An allocation by id.
    pub fn allocation(&self, id: &str) -> Result<Allocation, NodeError> {
        Ok(self.inner.store.allocation(&parse_id(id, "allocation")?)?)
    }

    /// Stock rows, optionally for one product and/or one location.
    pub fn stock(
        &self,
        product: Option<&str>,
        location: Option<&str>,
    ) -> Result<Vec<StockRow>, NodeError> {
        let filter = StockFilter {
            product_id: product
                .map(|p| self.find_product(p))
                .transpose()?
                .map(|p| p.id),
            location_id: location
                .map(|l| self.location(l))
                .transpose()?
                .map(|l| l.id),
        };
        Ok(self.inner.store.stock(&filter)?)
    }

    /// The ledger, newest first.
    pub fn ledger(&self, product: Option<&str>, limit: u32) -> Result<Vec<LedgerRow>, NodeError> {
        let filter = LedgerFilter {
            product_id: product
                .map(|p| self.find_product(p))
                .transpose()?
                .map(|p| p.id),
            limit,
        };
        Ok(self.inner.store.ledger(&filter)?)
    }

    /// The outbox, in push order.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, NodeError> {
        Ok(self.inner.store.outbox()?)
    }

    /// Integrity and consistency problems of the local database (empty when healthy).
    pub fn check(&self) -> Result<Vec<String>, NodeError> {
        Ok(self.inner.store.check()?)
    }

    fn resolve(&self, movement: &Movement) -> Result<stocksync_model::Movement, NodeError> {
        self.inner.store.device()?;
        let qty = |product: &Product, value: Decimal, uom: Option<Uom>| {
            Quantity::new(value, uom.unwrap_or(product.uom))
        };
        let (product, kind) = match movement {
            Movement::Receive {
                product,
                location,
                quantity,
                uom,
                unit_cost,
                reference,
            } => {
                let p = self.find_product(product)?;
                let kind = MovementKind::Receipt {
                    transaction_id: TransactionId::new(),
                    location_id: self.location(location)?.id,
                    quantity: qty(&p, *quantity, *uom),
                    unit_cost: *unit_cost,
                    reference: reference.clone(),
                };
                (p, kind)
            }
            Movement::Ship {
                product,
                location,
                quantity,
                uom,
                reference,
            } => {
                let p = self.find_product(product)?;
                let kind = MovementKind::Shipment {
                    transaction_id: TransactionId::new(),
                    location_id: self.location(location)?.id,
                    quantity: qty(&p, *quantity, *uom),
                    reference: reference.clone(),
                };
                (p, kind)
            }
            Movement::Adjust {
                product,
                location,
                delta,
                uom,
                reason,
            } => {
                let p = self.find_product(product)?;
                let kind = MovementKind::Adjustment {
                    transaction_id: TransactionId::new(),
                    location_id: self.location(location)?.id,
                    quantity: qty(&p, *delta, *uom),
                    reason_code: *reason,
                };
                (p, kind)
            }
            Movement::Count {
                product,
                location,
                counted,
                uom,
            } => {
                let p = self.find_product(product)?;
                let location_id = self.location(location)?.id;
                // What the counter's device shows now is the `expected` of the count.
                let expected = self.inner.store.stock_level(&p.id, &location_id)?.on_hand;
                let kind = MovementKind::Count {
                    transaction_id: TransactionId::new(),
                    location_id,
                    counted: qty(&p, *counted, *uom),
                    expected: Quantity::new(expected, p.uom),
                };
                (p, kind)
            }
            Movement::Transfer {
                product,
                from,
                to,
                quantity,
                uom,
            } => {
                let p = self.find_product(product)?;
                let kind = MovementKind::Transfer {
                    transfer_id: TransferId::new(),
                    from_location_id: self.location(from)?.id,
                    to_location_id: self.location(to)?.id,
                    quantity: qty(&p, *quantity, *uom),
                };
                (p, kind)
            }
            Movement::Allocate {
                product,
                location,
                quantity,
                uom,
            } => {
                let p = self.find_product(product)?;
                let kind = MovementKind::Allocation {
                    allocation_id: AllocationId::new(),
                    location_id: self.location(location)?.id,
                    quantity: qty(&p, *quantity, *uom),
                };
                (p, kind)
            }
            Movement::Release { allocation_id } => {
                let a = self.allocation(allocation_id)?;
                let p = self.inner.store.product(&a.product_id)?;
                let kind = MovementKind::Release {
                    allocation_id: a.id,
                    location_id: a.location_id,
                    quantity: a.quantity,
                };
                (p, kind)
            }
        };
        Ok(stocksync_model::Movement {
            product_id: product.id,
            kind,
        })
    }
}

fn parse_id<T: std::str::FromStr>(text: &str, field: &str) -> Result<T, NodeError>
where
    T::Err: std::fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e: T::Err| NodeError::invalid(field, e.to_string()))
}
