// Kernel::Binary: y = act(a op b) over each sample's len values; p.op: 0 = add, 1 = mul.
// p.bc = 0: b has len values per sample; p.bc = c > 0: b has c values per sample, broadcast
// over the pixels (HWC: element r uses b[r % c]). One invocation per output value; may run in
// place over a (ld reads y then).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.len) { return; }
  var j = i;
  if (p.bc != 0u) {
    j = (i / p.len) * p.bc + (i % p.len) % p.bc;
  }
  let u = ld(i); // a[i], or y[i] in place
  let v = b[j];
  y[i] = act(select(u + v, u * v, p.op == 1u));
}
