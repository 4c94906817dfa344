//! Mapping between the WIT dtypes and libtorch kinds.

use tch::Kind;

/// The element types a plugin can name (the WIT `dtype` enum, in the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    Float32,
    Float64,
    Float16,
    BFloat16,
    Int64,
    Int32,
    UInt8,
    Bool,
}

impl DType {
    pub fn kind(self) -> Kind {
        match self {
            DType::Float32 => Kind::Float,
            DType::Float64 => Kind::Double,
            DType::Float16 => Kind::Half,
            DType::BFloat16 => Kind::BFloat16,
            DType::Int64 => Kind::Int64,
            DType::Int32 => Kind::Int,
            DType::UInt8 => Kind::Uint8,
            DType::Bool => Kind::Bool,
        }
    }

    pub fn from_kind(kind: Kind) -> Option<DType> {
        Some(match kind {
            Kind::Float => DType::Float32,
            Kind::Double => DType::Float64,
            Kind::Half => DType::Float16,
            Kind::BFloat16 => DType::BFloat16,
            Kind::Int64 => DType::Int64,
            Kind::Int => DType::Int32,
            Kind::Uint8 => DType::UInt8,
            Kind::Bool => DType::Bool,
            _ => return None,
        })
    }

    /// torch's `ScalarType` code (what a `ScalarType` operator argument holds).
    pub fn scalar_type(self) -> i64 {
        match self {
            DType::UInt8 => 0,
            DType::Int32 => 3,
            DType::Int64 => 4,
            DType::Float16 => 5,
            DType::Float32 => 6,
            DType::Float64 => 7,
            DType::Bool => 11,
            DType::BFloat16 => 15,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Float64 | DType::Int64 => 8,
            DType::Float32 | DType::Int32 => 4,
            DType::Float16 | DType::BFloat16 => 2,
            DType::UInt8 | DType::Bool => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for d in [
            DType::Float32,
            DType::Float64,
            DType::Float16,
            DType::BFloat16,
            DType::Int64,
            DType::Int32,
            DType::UInt8,
            DType::Bool,
        ] {
            assert_eq!(DType::from_kind(d.kind()), Some(d));
            assert_eq!(d.kind().elt_size_in_bytes(), d.size());
        }
        assert_eq!(DType::from_kind(Kind::ComplexFloat), None);
    }
}
