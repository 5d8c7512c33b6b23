// Kernel::Concat, one dispatch per input: copies an input's cin channels into channels
// coff..coff+cin of the ctot-channel HWC output (flat inputs: hw = 1). One invocation per
// input value.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  let per = p.hw * p.cin;
  if (i >= p.n * per) { return; }
  let s = i / per;
  let r = i % per;
  let px = r / p.cin;
  let ch = r % p.cin;
  y[(s * p.hw + px) * p.ctot + p.coff + ch] = x[i];
}
