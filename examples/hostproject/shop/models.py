from django.db import models


class Order(models.Model):
    sku = models.CharField(max_length=64)
    qty = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.qty} × {self.sku}"
