//! Prints what tract makes of an ONNX file after typing and declutter: one line per node
//! (name, op, inputs, output fact). A debugging aid for extending the op mapping.
//!
//! cargo run --release -p mdeploy-onnx --example dump_tract -- model.onnx [1,28,28,1]
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or_else(|| tract_onnx::tract_core::internal::anyhow!("usage: dump_tract model.onnx [shape]"))?;
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    if let Some(shape) = args.get(2) {
        // A first dimension of "N" stays symbolic (how mdeploy-onnx converts).
        let mut dims: TVec<TDim> = tvec![];
        for s in shape.split(',') {
            dims.push(if s.trim() == "N" { model.symbols.sym("N").into() } else { s.trim().parse::<usize>()?.into() });
        }
        model = model.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), dims))?;
    }
    let typed = model.into_typed()?.into_decluttered()?;
    for id in typed.eval_order()? {
        let n = typed.node(id);
        println!("#{id} {:?} [{}] {:?} inputs={:?} -> {:?}", n.name, n.op.name(), n.op, n.inputs, n.outputs.iter().map(|o| format!("{:?}", o.fact)).collect::<Vec<_>>());
    }
    println!("outputs: {:?}", typed.output_outlets()?);
    Ok(())
}
