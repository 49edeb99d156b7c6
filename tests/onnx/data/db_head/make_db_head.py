"""A DBNet-style text-detection head (PaddleOCR's det model ends this way): Conv-BN-ReLU, then two
ConvTranspose 2x2/2 upsamplings with BN-ReLU, then Sigmoid; exported by torch.onnx (opset 11) with
random weights, plus a float64 reference output. Run: python3 make_db_head.py OUT_DIR"""
import sys, os, json
import numpy as np
import torch
import torch.nn as nn

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

class Head(nn.Module):
    def __init__(self, c=24):
        super().__init__()
        self.conv = nn.Conv2d(c, c // 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c // 4)
        self.up1 = nn.ConvTranspose2d(c // 4, c // 4, 2, stride=2)
        self.bn2 = nn.BatchNorm2d(c // 4)
        self.up2 = nn.ConvTranspose2d(c // 4, 1, 2, stride=2)
    def forward(self, x):
        x = torch.relu(self.bn1(self.conv(x)))
        x = torch.relu(self.bn2(self.up1(x)))
        return torch.sigmoid(self.up2(x))

m = Head().eval()
for bn in (m.bn1, m.bn2):
    bn.running_mean.uniform_(-0.5, 0.5); bn.running_var.uniform_(0.5, 1.5)
    bn.weight.data.uniform_(0.5, 1.5); bn.bias.data.uniform_(-0.2, 0.2)
x = torch.randn(2, 24, 13, 17)
torch.onnx.export(m, x, os.path.join(out, "db_head.onnx"), opset_version=11,
                  input_names=["x"], output_names=["maps"], dynamic_axes={"x": {0: "batch"}})
with torch.no_grad():
    y = m.double()(x.double()).numpy()
np.save(os.path.join(out, "x.npy"), x.numpy())
np.save(os.path.join(out, "maps_f64.npy"), y)
