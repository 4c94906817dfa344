//! Ergonomic tensor methods and operators over the WIT `tensor` resource.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::{BinaryOp, CompareOp, Dtype, ReduceOp, Tensor, UnaryOp};

/// A 0-dim float32 tensor holding `v`.
pub fn scalar(v: f64) -> Tensor {
    Tensor::full(&[], v, Dtype::Float32)
}

impl Tensor {
    pub fn from_slice_f32(data: &[f32], shape: &[i64]) -> Tensor {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::from_bytes(&bytes, Dtype::Float32, shape)
    }
    pub fn from_slice_i64(data: &[i64], shape: &[i64]) -> Tensor {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::from_bytes(&bytes, Dtype::Int64, shape)
    }
    pub fn relu(&self) -> Tensor {
        self.unary(UnaryOp::Relu)
    }
    pub fn gelu(&self) -> Tensor {
        self.unary(UnaryOp::Gelu)
    }
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Tensor {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }
    pub fn ln(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryOp::Abs)
    }
    pub fn square(&self) -> Tensor {
        self.unary(UnaryOp::Square)
    }
    pub fn detach(&self) -> Tensor {
        self.unary(UnaryOp::Detach)
    }
    /// A copy with its own storage (torch's `clone`).
    pub fn copy(&self) -> Tensor {
        self.unary(UnaryOp::Clone)
    }
    pub fn add_scalar(&self, v: f64) -> Tensor {
        self.binary_scalar(BinaryOp::Add, v)
    }
    pub fn sub_scalar(&self, v: f64) -> Tensor {
        self.binary_scalar(BinaryOp::Sub, v)
    }
    pub fn mul_scalar(&self, v: f64) -> Tensor {
        self.binary_scalar(BinaryOp::Mul, v)
    }
    pub fn div_scalar(&self, v: f64) -> Tensor {
        self.binary_scalar(BinaryOp::Div, v)
    }
    pub fn pow_scalar(&self, v: f64) -> Tensor {
        self.binary_scalar(BinaryOp::Pow, v)
    }
    pub fn eq_tensor(&self, other: &Tensor) -> Tensor {
        self.compare(CompareOp::Eq, other)
    }
    /// Sum of all elements.
    pub fn sum(&self) -> Tensor {
        self.reduce(ReduceOp::Sum, &[], false)
    }
    /// Mean of all elements.
    pub fn mean(&self) -> Tensor {
        self.reduce(ReduceOp::Mean, &[], false)
    }
    pub fn sum_dims(&self, dims: &[i64], keepdim: bool) -> Tensor {
        self.reduce(ReduceOp::Sum, dims, keepdim)
    }
    pub fn mean_dims(&self, dims: &[i64], keepdim: bool) -> Tensor {
        self.reduce(ReduceOp::Mean, dims, keepdim)
    }
    /// As float32.
    pub fn float(&self) -> Tensor {
        self.to_dtype(Dtype::Float32)
    }
    /// As int64.
    pub fn long(&self) -> Tensor {
        self.to_dtype(Dtype::Int64)
    }
}

macro_rules! binop {
    ($tr:ident, $method:ident, $op:expr) => {
        impl $tr<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl $tr<f64> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                self.binary_scalar($op, rhs)
            }
        }
    };
}

binop!(Add, add, BinaryOp::Add);
binop!(Sub, sub, BinaryOp::Sub);
binop!(Mul, mul, BinaryOp::Mul);
binop!(Div, div, BinaryOp::Div);

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }
}
