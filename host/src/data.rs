//! The data path: which rows a pass visits ([`sampler`]), how batches are fetched from a
//! declared dataset or a plugin's DataLoader ([`fetchers`]), or item by item from a
//! map-style dataset the plugin reads ([`items`]), streams of batches a plugin
//! produces ([`stream`]) with their worker instances ([`workers`]), and batches prefetched
//! on a thread ([`prefetch`]); what a DataModule hands it ([`spec`]). The loops drive it; it
//! knows nothing of them.

pub mod fetchers;
pub mod items;
pub mod prefetch;
pub mod sampler;
pub mod spec;
pub mod stream;
pub mod workers;
