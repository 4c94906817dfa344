"""Reference per-step losses of plugins/resnet in torch itself: a BasicBlock ResNet
(torchvision's block and init, the downsample built inside the block after bn2),
AdaptiveAvgPool2d, SGD with momentum and weight decay, BatchNorm in training mode. Run by
`make reference`:

    .venv/bin/python tests/reference/resnet_reference.py tests/reference/resnet.json
"""

import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED, BATCH, ROWS, EPOCHS, LR, MOMENTUM, WD = 7, 32, 320, 10, 0.05, 0.9, 5e-4


def conv(cin, cout, k, stride):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(cout, cout, 3, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = conv(3, 16, 3, 1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def images():
    """The plugin's images: pixel (c, h, w) of image n, class n mod 10."""
    n = torch.arange(ROWS).view(-1, 1, 1, 1)
    c = torch.arange(3).view(1, -1, 1, 1)
    h = torch.arange(16).view(1, 1, -1, 1)
    w = torch.arange(16).view(1, 1, 1, -1)
    cls = n % 10
    x = ((13 * c + 5 * h + 3 * w + 11 * cls) % 17).float() / 8.0 - 1.0
    x = x + ((n // 10) % 3).float() / 8.0
    return x, torch.arange(ROWS) % 10


def losses():
    torch.manual_seed(SEED)
    model = ResNet()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    x, y = images()
    out = []
    for _ in range(EPOCHS):
        for i in range(0, ROWS, BATCH):
            loss = F.cross_entropy(model(x[i : i + BATCH]), y[i : i + BATCH])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            out.append(loss.item())
    return out


def main(out_path):
    torch.set_num_threads(1)
    result = {"seed": SEED, "threads": 1, "epochs": EPOCHS, "losses": losses()}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"resnet reference: {len(result['losses'])} steps, last loss {result['losses'][-1]:.6f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/resnet.json")
